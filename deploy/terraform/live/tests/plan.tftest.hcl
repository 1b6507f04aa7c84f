# `terraform test` (run by .github/workflows/cd.yml with each environment's tfvars): the whole
# configuration plans for a new environment, with a mocked AWS provider and so no account. In a
# new environment every ID and ARN is known only after apply: a count or for_each that depends
# on one fails this plan, as it would fail the first real one.
mock_provider "aws" {
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
}

variables {
  image_tag = "0123456789abcdef0123456789abcdef01234567"
}

run "a_new_environment_plans" {
  command = plan
}
