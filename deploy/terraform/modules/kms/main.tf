# One customer managed key per environment: Kinesis streams, CloudWatch log groups, ECR, the
# MLflow bucket and database, the RDS master password secret and the SNS topic use it.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_root = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"
  log_groups   = "arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"
  # Use of the key by a service that encrypts for the project (CloudWatch Logs, EC2 Auto Scaling's
  # volumes): no administration, no grant.
  use_of_the_key = [
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
  ]
}

resource "aws_kms_key" "this" {
  description             = "${var.name}: streams, logs, images, MLflow store, secrets, notifications"
  enable_key_rotation     = true
  deletion_window_in_days = var.deletion_window_in_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "key" {
  # EC2 capacity only: the Auto Scaling statements below join this policy.
  source_policy_documents = data.aws_iam_policy_document.autoscaling[*].json
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; the only principals are this account (which delegates to IAM policies naming the key) and CloudWatch Logs under an encryption-context condition.
  #checkov:skip=CKV_AWS_356:In a key policy AWS requires Resource "*", which means this key, not every resource.
  #checkov:skip=CKV_AWS_109:The account root must keep PutKeyPolicy and grant management on its own key, or the key becomes unmanageable (AWS's default key policy does the same with kms:*).
  # The account administers the key and delegates its use to IAM policies (which name the key's
  # ARN). Actions are listed one by one: no "kms:*".
  statement {
    sid    = "AccountAdministersAndDelegates"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [local.account_root]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListGrants",
      "kms:ListKeyPolicies",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    # Wildcard resource: in a key policy "*" means "this key"; AWS requires it there.
    resources = ["*"]
  }

  # CloudWatch Logs encrypts the project's log groups (consumer, training, MLflow, state
  # machine, VPC flow logs) with the key, only for log groups of this account and region.
  statement {
    sid    = "CloudWatchLogsEncryptLogGroups"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    actions = local.use_of_the_key
    # Wildcard resource: in a key policy "*" means "this key"; AWS requires it there.
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = [local.log_groups]
    }
  }
}

# EC2 capacity: the Auto Scaling group launches instances whose EBS volumes this key encrypts.
# EC2 Auto Scaling acts through its service-linked role, which needs the key (and grants for the
# volumes it attaches); without this statement instances fail to launch (Client.InternalError).
data "aws_iam_policy_document" "autoscaling" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is the key itself; the only principal is the account's Auto Scaling service-linked role.
  #checkov:skip=CKV_AWS_356:In a key policy AWS requires Resource "*", which means this key, not every resource.
  count = var.autoscaling_service_linked_role_arn == null ? 0 : 1

  statement {
    sid    = "AutoScalingUsesTheKeyForEbs"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [var.autoscaling_service_linked_role_arn]
    }
    actions = local.use_of_the_key
    # Wildcard resource: in a key policy "*" means "this key"; AWS requires it there.
    resources = ["*"]
  }

  statement {
    sid    = "AutoScalingGrantsForAttachedVolumes"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = [var.autoscaling_service_linked_role_arn]
    }
    actions = ["kms:CreateGrant"]
    # Wildcard resource: in a key policy "*" means "this key"; AWS requires it there.
    resources = ["*"]
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
}
