output "state_bucket" {
  description = "Bucket of the environments' state: export TF_STATE_BUCKET=<this>."
  value       = module.state_bucket.bucket
}

output "plan_role_arn" {
  description = "GitHub secret/variable AWS_PLAN_ROLE_ARN."
  value       = aws_iam_role.github["plan"].arn
}

output "deploy_role_arn" {
  description = "GitHub variable AWS_DEPLOY_ROLE_ARN."
  value       = aws_iam_role.github["deploy"].arn
}
