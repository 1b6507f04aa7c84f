# The Prometheus Pushgateway (the official image) as a small ECS service: the learning loop's
# monitor, a batch job, pushes its figures here (job dropout-loop-monitor, grouping key model)
# and the deployment's Prometheus scrapes them with honor_labels: true, so the pushed job label
# stays (deploy/README.md: Amazon Managed Service for Prometheus or a self-run Prometheus).
#
# Reachable at pushgateway.<namespace>:9091 (Cloud Map) by the tasks that carry the clients
# group (training) and by the scrapers' CIDRs. The figures live in memory: a replaced task
# starts empty, and the next monitor run (every deploy starts one, then the schedule) pushes
# them again; the DropoutLoopMonitorStale alert says when pushes stop.
locals {
  port      = 9091
  container = "pushgateway"
  dns_name  = "pushgateway.${var.dns_namespace}"
}

# What modules/ecs_task runs (live/main.tf calls it with these outputs and the platform).
output "security_group" {
  description = "The Pushgateway tasks' security group (modules/ecs_task's security_group)."
  value = {
    name              = "${var.name}-server"
    description       = "Pushgateway tasks: pushes from the clients group, scrapes from the scrapers"
    https_description = "HTTPS: the image pull and CloudWatch Logs"
  }
}

# The Pushgateway has no authentication of its own: the clients group pushes (training), the
# scrapers' CIDRs read, nothing else connects.
output "service" {
  description = "The Pushgateway service and its endpoint (modules/ecs_task's service)."
  value = {
    desired_count = 1
    endpoint = {
      dns_name     = "pushgateway"
      namespace_id = var.dns_namespace_id
      port         = local.port
      cidr_blocks  = var.scraper_cidr_blocks
      descriptions = {
        clients_group       = "Attached to tasks that may push to the Pushgateway (training)"
        clients_to_server   = "Pushgateway API"
        server_from_clients = "Pushes from its clients (training)"
        server_from_cidrs   = "Prometheus scrapes /metrics"
      }
    }
  }
}

# No ecr_repository_arns, secret_arns or task policy: the image is public and there is no
# secret (the ECS agent only ships the output to the log group), and the Pushgateway calls no
# AWS API (its task role has no permission).
output "task" {
  description = "The Pushgateway task (modules/ecs_task's task)."
  value = {
    cpu    = var.cpu
    memory = var.memory
    containers = [
      {
        name  = local.container
        image = var.image
        # The image's own user (nobody).
        user = "65534:65534"
        # In memory only (no persistence file: the root file system is read-only).
        command      = ["--web.listen-address=:${local.port}", "--persistence.file=", "--log.format=json"]
        portMappings = [{ containerPort = local.port, protocol = "tcp", name = "http" }]
        healthCheck = {
          # The official image ships busybox's wget.
          command     = ["CMD", "wget", "--quiet", "--output-document=/dev/null", "http://127.0.0.1:${local.port}/-/ready"]
          interval    = 15
          timeout     = 5
          retries     = 3
          startPeriod = 15
        }
        stopTimeout = 10
      }
    ]
  }
}
