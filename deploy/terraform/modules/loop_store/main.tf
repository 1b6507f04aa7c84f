# The learning loop's store (docs/learning-loop.md): one private bucket, encrypted with the
# project key, whose prefixes are the loop's stages. Student records are personal data: each
# prefix has its own retention, and each writer may write only its own prefix.
#
#   captures/<model>/dt=<day>/<shard>/...jsonl.gz  what the consumer scored (personal data)
#   outcomes/import-<sha256>.jsonl                 the registrar's outcomes (personal data)
#   datasets/institution-<sha12>.csv               labelled datasets built from the two above
#   datasets/uci/<sha256>/data.csv                 the UCI file (public data, never expires)
#   runs/<execution>/<step>.json                   run summaries of the retraining workflow
#
# Versioned: a dataset or the UCI mirror cannot be lost to an overwrite or a delete, and an
# expired or deleted object is kept as a noncurrent version for noncurrent_version_days only,
# so personal data is gone at most retention + noncurrent_version_days after it was written.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account     = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  bucket_name = "${var.name}-${local.account}"
  # The prefixes of common/capture_format.py (CAPTURES_PREFIX, OUTCOMES_PREFIX,
  # DATASETS_PREFIX) and the run summaries' folder; tests/deploy checks they agree.
  prefixes = {
    captures = "captures/"
    outcomes = "outcomes/"
    datasets = "datasets/"
    runs     = "runs/"
  }
  # Datasets the loop builds are named institution-<sha12>.csv; the UCI mirror is not one of them.
  institution_datasets = "${local.prefixes.datasets}institution-"
  uci_mirror_key       = "${local.prefixes.datasets}uci/${var.uci_sha256}/data.csv"
  retention = {
    captures = { prefix = local.prefixes.captures, days = var.capture_retention_days }
    outcomes = { prefix = local.prefixes.outcomes, days = var.outcome_retention_days }
    datasets = { prefix = local.institution_datasets, days = var.dataset_retention_days }
    runs     = { prefix = local.prefixes.runs, days = var.run_summary_retention_days }
  }

  # Uploads the bucket policy refuses, by statement: the conditions under which it does.
  sse    = "s3:x-amz-server-side-encryption"
  key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
  denied_uploads = {
    DenyOtherEncryption = [
      { test = "Null", variable = local.sse, value = "false" },
      { test = "StringNotEquals", variable = local.sse, value = "aws:kms" },
    ]
    DenyOtherKeys = [
      { test = "Null", variable = local.key_id, value = "false" },
      { test = "StringNotEquals", variable = local.key_id, value = var.kms_key_arn },
    ]
    DenyAwsManagedKey = [
      { test = "StringEquals", variable = local.sse, value = "aws:kms" },
      { test = "Null", variable = local.key_id, value = "true" },
    ]
    DenyCustomerProvidedKeys = [
      { test = "Null", variable = "s3:x-amz-server-side-encryption-customer-algorithm", value = "false" },
    ]
  }
}

module "bucket" {
  source                  = "../bucket"
  name                    = local.bucket_name
  kms_key_arn             = var.kms_key_arn
  noncurrent_version_days = var.noncurrent_version_days
  expire_delete_markers   = true
  expiration              = local.retention
  policy_documents        = [data.aws_iam_policy_document.encryption.json]
  force_destroy           = var.force_destroy
  tags                    = var.tags
}

# Besides TLS only (modules/bucket): every object encrypted with the project key. Requests
# without encryption headers get the bucket's default (SSE-KMS with the project key); requests
# that ask for anything else are refused: another algorithm (SSE-S3, DSSE), another key,
# `aws:kms` without a key (which would mean the AWS managed key aws/s3), or a customer key
# (SSE-C). One Deny statement each (all the conditions of a statement must hold), none grants
# anything.
data "aws_iam_policy_document" "encryption" {
  dynamic "statement" {
    for_each = local.denied_uploads
    content {
      sid     = statement.key
      effect  = "Deny"
      actions = ["s3:PutObject"]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      resources = ["${module.bucket.arn}/*"]
      dynamic "condition" {
        for_each = statement.value
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = [condition.value.value]
        }
      }
    }
  }
}

# --- the registrar's outcome uploads (optional) ----------------------------------------------
# `python -m training outcomes import FILE` (or a registrar's export job) writes one object under
# outcomes/ and nothing else: no read, no list, no other prefix. The policy is an output for a
# principal managed elsewhere (an SSO permission set, a registrar's own role); with
# outcomes_importer_principal_arns, this module also makes a role those principals assume.
data "aws_iam_policy_document" "outcomes_importer" {
  statement {
    sid       = "UploadOutcomes"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = ["${module.bucket.arn}/${local.prefixes.outcomes}*"]
  }
  statement {
    sid       = "EncryptWithTheProjectKey"
    effect    = "Allow"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "outcomes_importer_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "AWS"
      identifiers = length(var.outcomes_importer_principal_arns) > 0 ? var.outcomes_importer_principal_arns : ["arn:${local.partition}:iam::${local.account}:root"]
    }
  }
}

resource "aws_iam_role" "outcomes_importer" {
  count              = length(var.outcomes_importer_principal_arns) > 0 ? 1 : 0
  name               = "${var.name}-outcomes-importer"
  assume_role_policy = data.aws_iam_policy_document.outcomes_importer_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "outcomes_importer" {
  count  = length(aws_iam_role.outcomes_importer)
  name   = "upload-outcomes"
  role   = aws_iam_role.outcomes_importer[0].id
  policy = data.aws_iam_policy_document.outcomes_importer.json
}
