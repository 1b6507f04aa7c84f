output "url" {
  description = "PUSHGATEWAY_URL of the training task."
  value       = "http://${local.dns_name}:${local.port}"
}

output "scrape_target" {
  description = "What Prometheus scrapes (with honor_labels: true)."
  value       = "${local.dns_name}:${local.port}"
}
