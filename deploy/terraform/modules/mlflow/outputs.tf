output "tracking_uri" {
  description = "URL of the tracking server inside the VPC."
  value       = "http://${local.dns_name}:${local.port}"
}

output "port" {
  description = "Port of the MLflow server."
  value       = local.port
}

output "client_security_group_id" {
  description = "Security group that lets a task call the MLflow server."
  value       = module.task.client_security_group_id
}

output "artifact_bucket" {
  description = "S3 bucket of the MLflow artifacts."
  value       = module.artifacts.bucket
}

output "database_endpoint" {
  description = "Address of the RDS PostgreSQL instance."
  value       = aws_db_instance.this.address
}

output "trainer_username" {
  description = "MLflow user of the training task."
  value       = var.trainer_username
}

output "trainer_password_secret_arn" {
  description = "Secret holding the training task's MLflow password."
  value       = aws_secretsmanager_secret.auth["trainer-password"].arn
}

output "consumer_username" {
  description = "MLflow user of the consumer (read-only)."
  value       = var.consumer_username
}

output "consumer_password_secret_arn" {
  description = "Secret holding the consumer's MLflow password."
  value       = aws_secretsmanager_secret.auth["consumer-password"].arn
}

output "auth_secret_names" {
  description = "Names of the registry's secrets (scripts/aws/secrets.sh seeds them)."
  value       = [for s in aws_secretsmanager_secret.auth : s.name]
}

output "dns_namespace_id" {
  description = "Cloud Map private DNS namespace of the dropout services (the Pushgateway registers there too)."
  value       = aws_service_discovery_private_dns_namespace.this.id
}
