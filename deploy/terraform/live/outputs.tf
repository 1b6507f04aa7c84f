output "region" {
  description = "Region of the environment."
  value       = data.aws_region.current.name
}

output "ecr_repository_urls" {
  description = "Image repository per image name."
  value       = module.ecr.repository_urls
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.cluster.cluster_name
}

output "consumer_service_name" {
  description = "ECS service of the consumer."
  value       = module.consumer_task.service_name
}

output "consumer_log_group" {
  description = "Log group of the consumer."
  value       = module.consumer_task.log_group_name
}

output "mlflow_service_name" {
  description = "ECS service of MLflow (same name as its task family)."
  value       = "${local.name}-mlflow"
}

output "training_state_machine_arn" {
  description = "State machine that runs a training."
  value       = module.training.state_machine_arn
}

output "training_outcome_topic_arn" {
  description = "SNS topic of training outcomes."
  value       = module.training.outcome_topic_arn
}

output "input_stream_name" {
  description = "Input stream."
  value       = module.streams.streams["input"].name
}

output "predictions_stream_name" {
  description = "Predictions stream."
  value       = module.streams.streams["predictions"].name
}

output "dead_letter_stream_name" {
  description = "Dead-letter stream."
  value       = module.streams.streams["dead_letter"].name
}

output "mlflow_tracking_uri" {
  description = "MLflow inside the VPC."
  value       = module.mlflow.tracking_uri
}

output "mlflow_artifact_bucket" {
  description = "Artifact bucket of MLflow."
  value       = module.mlflow.artifact_bucket
}

output "mlflow_auth_secret_names" {
  description = "Secrets of the registry's users (seeded by scripts/aws/secrets.sh)."
  value       = module.mlflow.auth_secret_names
}

output "loop_bucket" {
  description = "The learning loop's bucket (captures/, outcomes/, datasets/, runs/)."
  value       = module.loop_store.bucket
}

output "uci_mirror_uri" {
  description = "The UCI file's copy the training job reads (scripts/aws/seed-data.sh uploads it)."
  value       = module.loop_store.uci_mirror_uri
}

output "outcomes_importer_role_arn" {
  description = "Role that may only upload outcomes (null without outcomes_importer_principal_arns)."
  value       = module.loop_store.outcomes_importer_role_arn
}

output "pushgateway_url" {
  description = "Pushgateway inside the VPC; scrape it with honor_labels: true."
  value       = module.pushgateway.url
}

output "pushgateway_service_name" {
  description = "ECS service of the Pushgateway."
  value       = module.pushgateway_task.service_name
}
