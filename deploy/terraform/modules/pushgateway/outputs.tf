output "url" {
  description = "PUSHGATEWAY_URL of the training task."
  value       = "http://${local.dns_name}:${local.port}"
}

output "scrape_target" {
  description = "What Prometheus scrapes (with honor_labels: true)."
  value       = "${local.dns_name}:${local.port}"
}

output "client_security_group_id" {
  description = "Security group that lets a task push to the Pushgateway."
  value       = module.task.client_security_group_id
}

output "service_name" {
  description = "ECS service of the Pushgateway."
  value       = module.task.service_name
}
