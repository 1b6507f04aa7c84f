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
  value       = aws_security_group.clients.id
}

output "artifact_bucket" {
  description = "S3 bucket of the MLflow artifacts."
  value       = aws_s3_bucket.artifacts.bucket
}

output "database_endpoint" {
  description = "Address of the RDS PostgreSQL instance."
  value       = aws_db_instance.this.address
}
