output "bucket" {
  description = "Name of the loop's bucket."
  value       = module.bucket.bucket
}

output "bucket_arn" {
  description = "ARN of the loop's bucket."
  value       = module.bucket.arn
}

output "uri" {
  description = "LOOP_URI of the consumer and the training job (the bucket's root)."
  value       = "s3://${module.bucket.bucket}/"
}

output "prefixes" {
  description = "The loop's prefixes: captures, outcomes, datasets, runs."
  value       = local.prefixes
}

output "uci_mirror_uri" {
  description = "UCI_MIRROR_URI: the UCI file's copy (scripts/aws/seed-data.sh uploads it once)."
  value       = "s3://${module.bucket.bucket}/${local.uci_mirror_key}"
}

output "uci_mirror_key" {
  description = "Key of the UCI file's copy."
  value       = local.uci_mirror_key
}

output "institution_datasets_prefix" {
  description = "Key prefix of the labelled datasets the training job builds."
  value       = local.institution_datasets
}

output "outcomes_importer_policy_json" {
  description = "Policy that allows uploads under outcomes/ only: attach it to a registrar's principal."
  value       = data.aws_iam_policy_document.outcomes_importer.json
}

output "outcomes_importer_role_arn" {
  description = "Role that may only upload outcomes (null without outcomes_importer_principal_arns)."
  value       = one(aws_iam_role.outcomes_importer[*].arn)
}
