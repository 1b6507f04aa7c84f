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
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Only the consumer, training and state machine roles (and an optional outcomes importer) can reach the bucket, TLS-only and private; enable CloudTrail S3 data events at the organisation level for an access audit instead of a second bucket of logs about personal data.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: the scheduled workflow reads the loop's prefixes when it runs.
  #checkov:skip=CKV_AWS_144:A second copy of personal data in another region is a data-protection decision (and a second retention to enforce), left to each deployment; versioning protects against overwrites and deletes.
  bucket        = local.bucket_name
  force_destroy = var.force_destroy
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # One data key per bucket and period instead of a KMS request per object (captures are
    # written once per batch per shard).
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  dynamic "rule" {
    for_each = local.retention
    content {
      id     = "expire-${rule.key}"
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      expiration {
        days = rule.value.days
      }
    }
  }

  rule {
    id     = "old-versions-delete-markers-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# A deny-only policy: TLS only, and every object encrypted with the project key. Requests
# without encryption headers get the bucket's default (SSE-KMS with the project key); requests
# that ask for anything else are refused: another algorithm (SSE-S3, DSSE), another key,
# `aws:kms` without a key (which would mean the AWS managed key aws/s3), or a customer key
# (SSE-C). Deny statements may name every action; none of them grants anything.
data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  statement {
    sid     = "DenyOtherEncryption"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["false"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
  }
  statement {
    sid     = "DenyOtherKeys"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["false"]
    }
    condition {
      test     = "StringNotEquals"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [var.kms_key_arn]
    }
  }
  statement {
    sid     = "DenyAwsManagedKey"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-server-side-encryption"
      values   = ["aws:kms"]
    }
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = ["true"]
    }
  }
  statement {
    sid     = "DenyCustomerProvidedKeys"
    effect  = "Deny"
    actions = ["s3:PutObject"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = ["${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Null"
      variable = "s3:x-amz-server-side-encryption-customer-algorithm"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket     = aws_s3_bucket.this.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.this]
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
    resources = ["${aws_s3_bucket.this.arn}/${local.prefixes.outcomes}*"]
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
