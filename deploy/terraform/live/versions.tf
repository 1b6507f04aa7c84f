terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
  # Partial configuration: key, encryption and locking in envs/ENV.backend.hcl, the bucket
  # (created once by deploy/terraform/bootstrap) and the region on the command line.
  backend "s3" {}
}
