output "region" {
  description = "Region of the environment."
  value       = module.stack.region
}

output "ecr_repository_urls" {
  description = "Image repository per image name."
  value       = module.stack.ecr_repository_urls
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.stack.cluster_name
}

output "consumer_service_name" {
  description = "ECS service of the consumer."
  value       = module.stack.consumer_service_name
}

output "consumer_log_group" {
  description = "Log group of the consumer."
  value       = module.stack.consumer_log_group
}

output "mlflow_service_name" {
  description = "ECS service of MLflow."
  value       = module.stack.mlflow_service_name
}

output "training_state_machine_arn" {
  description = "State machine that runs a training."
  value       = module.stack.training_state_machine_arn
}

output "training_outcome_topic_arn" {
  description = "SNS topic of training outcomes."
  value       = module.stack.training_outcome_topic_arn
}

output "input_stream_name" {
  description = "Input stream."
  value       = module.stack.input_stream_name
}

output "predictions_stream_name" {
  description = "Predictions stream."
  value       = module.stack.predictions_stream_name
}

output "dead_letter_stream_name" {
  description = "Dead-letter stream."
  value       = module.stack.dead_letter_stream_name
}

output "mlflow_tracking_uri" {
  description = "MLflow inside the VPC."
  value       = module.stack.mlflow_tracking_uri
}

output "loop_bucket" {
  description = "The learning loop's bucket."
  value       = module.stack.loop_bucket
}

output "uci_mirror_uri" {
  description = "The UCI file's copy (scripts/aws/seed-data.sh uploads it)."
  value       = module.stack.uci_mirror_uri
}

output "pushgateway_url" {
  description = "Pushgateway inside the VPC (scrape with honor_labels: true)."
  value       = module.stack.pushgateway_url
}
