# Run once per AWS account, with local state, before any environment:
#   terraform init && terraform apply -var github_repository=OWNER/REPO \
#     -var github_owner_id=N -var github_repository_id=N -var 'deploy_policy_arns=[...]'
# It creates what the environments' S3 backend and the CD workflow need: the state bucket
# (versioned, KMS-encrypted, private; locking is a lock file in the same bucket) and the roles
# GitHub Actions assumes through OIDC (no stored keys).
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
}

provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  bucket = "dropout-tfstate-${data.aws_caller_identity.current.account_id}"
  tags   = { Project = "student-dropout-early-warning", Stack = "bootstrap" }
  oidc   = "token.actions.githubusercontent.com"
  # The provider's ARN is fixed by its URL, whether this stack creates it or it exists already.
  oidc_provider_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:oidc-provider/${local.oidc}"

  # The `sub` claim names the repository in one of two forms. Classic: repo:OWNER/REPO:...
  # Immutable IDs (default for repositories created or renamed since 15 July 2026, opt-in for
  # others): repo:OWNER@OWNER_ID/REPO@REPO_ID:..., which a deleted-and-recreated owner or
  # repository name can never match. Both are trusted when the IDs are given; set
  # trust_classic_subject = false once the repository sends the immutable form.
  github_owner = split("/", var.github_repository)[0]
  github_repo  = split("/", var.github_repository)[1]
  github_subject_repos = concat(
    var.trust_classic_subject ? ["repo:${var.github_repository}"] : [],
    var.github_owner_id == null ? [] : ["repo:${local.github_owner}@${var.github_owner_id}/${local.github_repo}@${var.github_repository_id}"],
  )
}

module "kms" {
  source = "../modules/kms"
  name   = "dropout-tfstate"
  tags   = local.tags
}

resource "aws_s3_bucket" "state" {
  #checkov:skip=CKV_AWS_18:Only the plan and deploy roles reach the state (TLS-only, no public access); use CloudTrail S3 data events for an access audit rather than a second log bucket.
  #checkov:skip=CKV2_AWS_62:Nothing consumes state-file events.
  #checkov:skip=CKV_AWS_144:Versioning keeps every earlier state; cross-region replication is a disaster-recovery choice left to each account.
  bucket = local.bucket
  tags   = local.tags
}

resource "aws_s3_bucket_public_access_block" "state" {
  bucket                  = aws_s3_bucket.state.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "state" {
  bucket = aws_s3_bucket.state.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = module.kms.key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "state" {
  bucket = aws_s3_bucket.state.id
  rule {
    id     = "old-state-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 90
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.state]
}

data "aws_iam_policy_document" "state_bucket" {
  # Deny-only: no request without TLS (a deny may name every action; nothing is granted here).
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.state.arn, "${aws_s3_bucket.state.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "state" {
  bucket     = aws_s3_bucket.state.id
  policy     = data.aws_iam_policy_document.state_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.state]
}

# --- GitHub Actions OIDC ---------------------------------------------------------------------
resource "aws_iam_openid_connect_provider" "github" {
  count           = var.create_github_oidc_provider ? 1 : 0
  url             = "https://${local.oidc}"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = local.tags
}

# Plan role: pull requests and main, read-only plus the state (terraform plan takes the lock).
# Both trust policies also allow sts:TagSession: configure-aws-credentials passes no tags with
# a web identity (GitHub's token carries none), but tags that do arrive (role chaining, a token
# with session tags) need it, and without it AssumeRoleWithWebIdentity would be refused.
data "aws_iam_policy_document" "plan_assume" {
  #checkov:skip=CKV_AWS_358:The sub condition pins the repository (classic or immutable-ID form, from required variables that checkov cannot resolve) and its pull requests, main branch or environments.
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values = flatten([
        for repo in local.github_subject_repos : ["${repo}:pull_request", "${repo}:ref:refs/heads/main"]
      ])
    }
  }
}

resource "aws_iam_role" "plan" {
  name                 = "dropout-github-plan"
  assume_role_policy   = data.aws_iam_policy_document.plan_assume.json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy_attachment" "plan" {
  for_each   = toset(var.plan_policy_arns)
  role       = aws_iam_role.plan.name
  policy_arn = each.value
}

data "aws_iam_policy_document" "state_access" {
  statement {
    sid       = "ListState"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.state.arn]
  }
  statement {
    sid    = "ReadWriteStateAndLock"
    effect = "Allow"
    actions = [
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${aws_s3_bucket.state.arn}/dropout/*"]
  }
  statement {
    sid    = "StateKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey",
    ]
    resources = [module.kms.key_arn]
  }
}

resource "aws_iam_role_policy" "plan_state" {
  name   = "terraform-state"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.state_access.json
}

# Deploy role: only jobs that run in a GitHub environment (stg, prod), which is where the
# approval rule lives. Its permissions are whatever your organisation grants deployers
# (deploy_policy_arns), plus the state.
data "aws_iam_policy_document" "deploy_assume" {
  #checkov:skip=CKV_AWS_358:The sub condition pins the repository (classic or immutable-ID form, from required variables that checkov cannot resolve) and its environments.
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity", "sts:TagSession"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values = flatten([
        for repo in local.github_subject_repos : [for env in var.github_environments : "${repo}:environment:${env}"]
      ])
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "dropout-github-deploy"
  assume_role_policy   = data.aws_iam_policy_document.deploy_assume.json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy_attachment" "deploy" {
  for_each   = toset(var.deploy_policy_arns)
  role       = aws_iam_role.deploy.name
  policy_arn = each.value
}

resource "aws_iam_role_policy" "deploy_state" {
  name   = "terraform-state"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.state_access.json
}
