# The state bucket and its settings are a modules/bucket (private, versioned, SSE-KMS, TLS-only),
# like the environments' buckets: Terraform moves them in the local state, nothing is recreated
# (the bucket's noncurrent-version rule is only renamed, old-versions-and-uploads).
moved {
  from = aws_s3_bucket.state
  to   = module.state_bucket.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_public_access_block.state
  to   = module.state_bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_ownership_controls.state
  to   = module.state_bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_versioning.state
  to   = module.state_bucket.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.state
  to   = module.state_bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.state
  to   = module.state_bucket.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.state
  to   = module.state_bucket.aws_s3_bucket_policy.this
}

# The plan and deploy roles are one resource (and one trust policy) per GitHub role.
moved {
  from = aws_iam_role.plan
  to   = aws_iam_role.github["plan"]
}

moved {
  from = aws_iam_role.deploy
  to   = aws_iam_role.github["deploy"]
}

moved {
  from = aws_iam_role_policy.plan_state
  to   = aws_iam_role_policy.state["plan"]
}

moved {
  from = aws_iam_role_policy.deploy_state
  to   = aws_iam_role_policy.state["deploy"]
}
