variable "name" {
  description = "Name of the service, task family, roles and security groups."
  type        = string
}

variable "dns_namespace_id" {
  description = "Cloud Map private DNS namespace (the MLflow module's) where the service registers."
  type        = string
}

variable "dns_namespace" {
  description = "Name of that namespace; the Pushgateway answers at pushgateway.<namespace>:9091."
  type        = string
}

variable "scraper_cidr_blocks" {
  description = "CIDRs of the Prometheus scrapers (an Amazon Managed Prometheus collector in the VPC's subnets, a self-run Prometheus)."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "The official Pushgateway image, pinned by tag and digest."
  type        = string
  default     = "prom/pushgateway:v1.11.3@sha256:74fa117cef2d7e383112d25139ff1c2d2e309c35389a9e0554a47136a1482e48"
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 512
}
