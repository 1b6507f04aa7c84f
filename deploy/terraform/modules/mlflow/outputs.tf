output "tracking_uri" {
  description = "URL of the tracking server inside the VPC."
  value       = local.tracking_uri
}

output "port" {
  description = "Port of the MLflow server."
  value       = local.port
}

output "artifact_bucket" {
  description = "S3 bucket of the MLflow artifacts."
  value       = module.artifacts.bucket
}

output "database_endpoint" {
  description = "Address of the RDS PostgreSQL instance."
  value       = aws_db_instance.this.address
}

output "clients" {
  description = "What each registry client (trainer: MANAGE, consumer: READ) needs: the tracking URI, its user and the secret of its password (the modules' mlflow input)."
  value = {
    for client, username in local.client_usernames : client => {
      tracking_uri        = local.tracking_uri
      username            = username
      password_secret_arn = aws_secretsmanager_secret.auth["${client}-password"].arn
    }
  }
}

output "auth_secret_names" {
  description = "Names of the registry's secrets (scripts/aws/secrets.sh seeds them)."
  value       = [for s in aws_secretsmanager_secret.auth : s.name]
}

output "dns_namespace_id" {
  description = "Cloud Map private DNS namespace of the dropout services (the Pushgateway registers there too)."
  value       = aws_service_discovery_private_dns_namespace.this.id
}
