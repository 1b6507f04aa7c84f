# A private bucket of the project (the Terraform state, the MLflow artifacts, the learning loop's
# store): no public access, owner-enforced objects, versioned, SSE-KMS with the project's key
# and a bucket key, TLS-only. Old versions and incomplete uploads expire; objects under a prefix
# may expire too. The caller adds its own (deny) statements to the bucket policy.
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Only the project's own roles reach these buckets (the state: the plan and deploy roles; the MLflow artifacts: the server's task role; the loop: the consumer, training, state machine and outcomes importer roles), TLS-only and private; enable CloudTrail S3 data events at the organisation level for an access audit instead of a second bucket of logs (about personal data, for the loop).
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: the state is read by Terraform, the registry (not its bucket) announces new model versions, the scheduled workflow reads the loop's prefixes when it runs.
  #checkov:skip=CKV_AWS_144:Versioning (with the database backups, for MLflow) protects against overwrites and deletes; a second copy in another region is a disaster-recovery choice, and for the loop's personal data a data-protection decision (with a second retention to enforce), left to each deployment.
  bucket        = var.name
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
    # One data key per bucket and period instead of a KMS request per object.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  dynamic "rule" {
    for_each = var.expiration
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
    id     = var.expire_delete_markers ? "old-versions-delete-markers-uploads" : "old-versions-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    dynamic "expiration" {
      for_each = var.expire_delete_markers ? [true] : []
      content {
        expired_object_delete_marker = true
      }
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# No request without TLS, and whatever the caller's statements deny. A deny statement may name
# every action (that is what makes it safe); nothing here grants anything.
data "aws_iam_policy_document" "bucket" {
  source_policy_documents = var.policy_documents
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
}

resource "aws_s3_bucket_policy" "this" {
  bucket     = aws_s3_bucket.this.id
  policy     = data.aws_iam_policy_document.bucket.json
  depends_on = [aws_s3_bucket_public_access_block.this]
}
