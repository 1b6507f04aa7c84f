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
  # Short names for the ARNs of the plan role's policy.
  partition = data.aws_partition.current.partition
  account   = data.aws_caller_identity.current.account_id
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

module "state_bucket" {
  source                  = "../modules/bucket"
  name                    = local.bucket
  kms_key_arn             = module.kms.key_arn
  noncurrent_version_days = 90
  tags                    = local.tags
}

# --- GitHub Actions OIDC ---------------------------------------------------------------------
resource "aws_iam_openid_connect_provider" "github" {
  count           = var.create_github_oidc_provider ? 1 : 0
  url             = "https://${local.oidc}"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]
  tags            = local.tags
}

# The roles GitHub Actions assumes, and the `sub` claims each trusts:
#   plan    pull requests and main; reads what `terraform plan` needs (plan_read) plus the state
#           (terraform plan takes the lock);
#   deploy  only jobs that run in a GitHub environment (stg, prod), which is where the approval
#           rule lives; its permissions are whatever your organisation grants deployers
#           (deploy_policy_arns), plus the state.
locals {
  github_subjects = {
    plan = flatten([
      for repo in local.github_subject_repos : ["${repo}:pull_request", "${repo}:ref:refs/heads/main"]
    ])
    deploy = flatten([
      for repo in local.github_subject_repos : [for env in var.github_environments : "${repo}:environment:${env}"]
    ])
  }
}

# Both trust policies also allow sts:TagSession: configure-aws-credentials passes no tags with
# a web identity (GitHub's token carries none), but tags that do arrive (role chaining, a token
# with session tags) need it, and without it AssumeRoleWithWebIdentity would be refused.
data "aws_iam_policy_document" "github_assume" {
  #checkov:skip=CKV_AWS_358:The sub condition pins the repository (classic or immutable-ID form, from required variables that checkov cannot resolve) and its pull requests, main branch or environments.
  for_each = local.github_subjects
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
      values   = each.value
    }
  }
}

resource "aws_iam_role" "github" {
  for_each             = local.github_subjects
  name                 = "dropout-github-${each.key}"
  assume_role_policy   = data.aws_iam_policy_document.github_assume[each.key].json
  max_session_duration = 3600
  tags                 = local.tags
}

resource "aws_iam_role_policy_attachment" "plan" {
  for_each   = toset(var.plan_policy_arns)
  role       = aws_iam_role.github["plan"].name
  policy_arn = each.value
}

resource "aws_iam_role_policy_attachment" "deploy" {
  for_each   = toset(var.deploy_policy_arns)
  role       = aws_iam_role.github["deploy"].name
  policy_arn = each.value
}

# What `terraform plan` reads to refresh the stack's resources: their configuration, never their
# data. Pull requests can assume this role, so no object reads outside the state (s3:GetObject),
# no secret values (secretsmanager:GetSecretValue: Terraform holds no secret version), no stream
# records, table items, log events, image layers or execution histories, and KMS decryption only
# of the state (state_access below). Describe/List/Get of configuration support no resource-level
# permission in most services, hence "*" there; buckets, secrets and the AMI parameter are scoped.
data "aws_iam_policy_document" "plan_read" {
  statement {
    sid = "DescribeWithoutResourceLevelPermissions"
    actions = [
      "application-autoscaling:DescribeScalableTargets",
      "application-autoscaling:DescribeScalingPolicies",
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeLifecycleHooks",
      "autoscaling:DescribeTags",
      "autoscaling:DescribeWarmPool",
      "ec2:DescribeAddresses",
      "ec2:DescribeAddressesAttribute",
      "ec2:DescribeAvailabilityZones",
      "ec2:DescribeFlowLogs",
      "ec2:DescribeImages",
      "ec2:DescribeInternetGateways",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribeNatGateways",
      "ec2:DescribeNetworkAcls",
      "ec2:DescribeNetworkInterfaces",
      "ec2:DescribePrefixLists",
      "ec2:DescribeRouteTables",
      "ec2:DescribeSecurityGroupRules",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets",
      "ec2:DescribeTags",
      "ec2:DescribeVpcEndpoints",
      "ec2:DescribeVpcs",
      "ecs:DescribeTaskDefinition",
      "kms:ListAliases",
      "logs:DescribeLogGroups",
    ]
    # Wildcard resource: these Describe/List actions support no resource-level permissions.
    resources = ["*"]
  }
  statement {
    # Everything else: configuration reads on the stack's own resources (named dropout-*, or with
    # IDs AWS generates: VPCs, scaling targets, Cloud Map).
    sid = "DescribeTheProjectsResources"
    actions = [
      "application-autoscaling:ListTagsForResource",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:ListTagsForResource",
      "ec2:DescribeVpcAttribute",
      "ecr:DescribeRepositories",
      "ecr:GetLifecyclePolicy",
      "ecr:GetRepositoryPolicy",
      "ecr:ListTagsForResource",
      "ecs:DescribeCapacityProviders",
      "ecs:DescribeClusters",
      "ecs:DescribeServices",
      "ecs:ListTagsForResource",
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListTagsForStream",
      "logs:ListTagsForResource",
      "logs:ListTagsLogGroup",
      "rds:DescribeDBInstances",
      "rds:DescribeDBParameterGroups",
      "rds:DescribeDBParameters",
      "rds:DescribeDBSubnetGroups",
      "rds:ListTagsForResource",
      "scheduler:GetSchedule",
      "servicediscovery:GetNamespace",
      "servicediscovery:GetService",
      "servicediscovery:ListTagsForResource",
      "sns:GetSubscriptionAttributes",
      "sns:GetTopicAttributes",
      "sns:ListTagsForResource",
      "states:DescribeStateMachine",
      "states:ListTagsForResource",
    ]
    resources = [
      "arn:${local.partition}:application-autoscaling:*:${local.account}:scalable-target/*",
      "arn:${local.partition}:cloudwatch:*:${local.account}:alarm:dropout-*",
      "arn:${local.partition}:ec2:*:${local.account}:vpc/*",
      "arn:${local.partition}:ecr:*:${local.account}:repository/dropout-*",
      "arn:${local.partition}:ecs:*:${local.account}:cluster/dropout-*",
      "arn:${local.partition}:ecs:*:${local.account}:service/dropout-*",
      "arn:${local.partition}:ecs:*:${local.account}:capacity-provider/dropout-*",
      "arn:${local.partition}:ecs:*:${local.account}:task-definition/dropout-*",
      "arn:${local.partition}:kinesis:*:${local.account}:stream/dropout-*",
      "arn:${local.partition}:logs:*:${local.account}:log-group:/dropout/*",
      "arn:${local.partition}:logs:*:${local.account}:log-group:/aws/vendedlogs/states/dropout-*",
      "arn:${local.partition}:rds:*:${local.account}:db:dropout-*",
      "arn:${local.partition}:rds:*:${local.account}:pg:dropout-*",
      "arn:${local.partition}:rds:*:${local.account}:subgrp:dropout-*",
      "arn:${local.partition}:scheduler:*:${local.account}:schedule/default/dropout-*",
      "arn:${local.partition}:servicediscovery:*:${local.account}:namespace/*",
      "arn:${local.partition}:servicediscovery:*:${local.account}:service/*",
      "arn:${local.partition}:sns:*:${local.account}:dropout-*",
      "arn:${local.partition}:states:*:${local.account}:stateMachine:dropout-*",
    ]
  }
  statement {
    # Key metadata and policy of the account's keys; no cryptographic operation (the state key's
    # use is in state_access).
    sid = "DescribeKeys"
    actions = [
      "kms:DescribeKey",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListResourceTags",
    ]
    resources = ["arn:${local.partition}:kms:*:${local.account}:key/*"]
  }
  statement {
    sid = "ReadRolesAndPolicies"
    actions = [
      "iam:GetInstanceProfile",
      "iam:GetOpenIDConnectProvider",
      "iam:GetPolicy",
      "iam:GetPolicyVersion",
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:ListRolePolicies",
      "iam:ListRoleTags",
    ]
    resources = [
      "arn:${local.partition}:iam::${local.account}:role/dropout-*",
      "arn:${local.partition}:iam::${local.account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling",
      "arn:${local.partition}:iam::${local.account}:instance-profile/dropout-*",
      "arn:${local.partition}:iam::${local.account}:oidc-provider/${local.oidc}",
      "arn:${local.partition}:iam::${local.account}:policy/*",
      "arn:${local.partition}:iam::aws:policy/*",
    ]
  }
  statement {
    # Bucket configuration of the project's buckets (state, MLflow artifacts): no object reads.
    sid = "ReadProjectBucketConfiguration"
    actions = [
      "s3:GetAccelerateConfiguration",
      "s3:GetBucketAcl",
      "s3:GetBucketCORS",
      "s3:GetBucketLogging",
      "s3:GetBucketObjectLockConfiguration",
      "s3:GetBucketOwnershipControls",
      "s3:GetBucketPolicy",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketRequestPayment",
      "s3:GetBucketTagging",
      "s3:GetBucketVersioning",
      "s3:GetBucketWebsite",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:GetReplicationConfiguration",
    ]
    resources = ["arn:${local.partition}:s3:::dropout-*"]
  }
  statement {
    # The secrets' metadata and policy; their values never (Terraform creates no version).
    sid = "DescribeProjectSecrets"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetResourcePolicy",
    ]
    resources = ["arn:${local.partition}:secretsmanager:*:${local.account}:secret:dropout-*"]
  }
  statement {
    # EC2 capacity: the ECS-optimized AMI, a public AWS parameter.
    sid       = "ReadTheEcsAmiParameter"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:*::parameter/aws/service/ecs/optimized-ami/*"]
  }
}

resource "aws_iam_role_policy" "plan_read" {
  name   = "terraform-plan-read"
  role   = aws_iam_role.github["plan"].id
  policy = data.aws_iam_policy_document.plan_read.json
}

data "aws_iam_policy_document" "state_access" {
  statement {
    sid       = "ListState"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [module.state_bucket.arn]
  }
  statement {
    sid    = "ReadWriteStateAndLock"
    effect = "Allow"
    actions = [
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${module.state_bucket.arn}/dropout/*"]
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

# Both roles read and write the state (and its lock file) with its key.
resource "aws_iam_role_policy" "state" {
  for_each = aws_iam_role.github
  name     = "terraform-state"
  role     = each.value.id
  policy   = data.aws_iam_policy_document.state_access.json
}
