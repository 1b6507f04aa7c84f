variable "name" {
  description = "Name of the task family, its roles (NAME-execution, NAME-task), its log group (/dropout/NAME) and its service."
  type        = string
}

variable "platform" {
  description = "Where the task runs and what its resources share (live/main.tf's local.platform, the same for every task): the ECS cluster (its capacity provider, FARGATE or EC2), the VPC and its private subnets, the project key (log group, images, secrets), log retention, tags."
  type = object({
    cluster_name             = string
    cluster_arn              = string
    capacity_provider        = string
    requires_compatibilities = string
    vpc_id                   = string
    vpc_cidr_block           = string
    subnet_ids               = list(string)
    kms_key_arn              = string
    log_retention_days       = number
    tags                     = map(string)
  })
}

variable "task" {
  description = "What the task runs (the `task` output of its service's module): CPU units (1024 = 1 vCPU) and memory in MiB; the container definitions (ECS JSON keys: name, image, user, environment, secrets, ports, health check... essential unless set to false; readonlyRootFilesystem and the awslogs configuration are added; the execution role reads the Secrets Manager secrets their `secrets` name, and no other); the names of its (ephemeral) volumes, the paths its containers write to; the ECR repositories its images come from (the execution role may pull them; none: public images); the task role's inline policy, its name and the json of the caller's aws_iam_policy_document (none: the task calls no AWS API)."
  type = object({
    cpu                 = number
    memory              = number
    containers          = any
    volumes             = optional(list(string), [])
    ecr_repository_arns = optional(list(string), [])
    policy_name         = optional(string)
    policy_json         = optional(string)
  })
  validation {
    condition     = length(var.task.containers) > 0 && alltrue([for c in var.task.containers : can(c.name) && can(c.image)])
    error_message = "task.containers is a list of container definitions, each with a name and an image."
  }
}

variable "security_group" {
  description = "The task's security group: its name and description, why it needs HTTPS out (every task does), and more rules (one TCP port each)."
  type = object({
    name              = string
    description       = string
    https_description = string
    ingress           = optional(list(object({ description = string, port = number, cidr_blocks = list(string) })), [])
    egress            = optional(list(object({ description = string, port = number, cidr_blocks = list(string) })), [])
  })
}

variable "service" {
  description = "The service that keeps desired_count tasks running (null: the task is run by someone else, e.g. a state machine). autoscaled: an autoscaling policy owns the count after the first apply. endpoint: a Cloud Map name DNS_NAME.<namespace> on PORT, reachable by a clients group and by cidr_blocks only."
  type = object({
    desired_count            = number
    autoscaled               = optional(bool, false)
    extra_security_group_ids = optional(list(string), [])
    endpoint = optional(object({
      dns_name     = string
      namespace_id = string
      port         = number
      cidr_blocks  = list(string)
      descriptions = object({ clients_group = string, clients_to_server = string, server_from_clients = string, server_from_cidrs = string })
    }))
  })
  default = null
  validation {
    # An endpoint's group gets separate rule resources, which inline rules of the same group
    # would fight (each apply removes the other's); the endpoint says who reaches its port.
    condition     = try(var.service.endpoint, null) == null || length(var.security_group.ingress) == 0
    error_message = "A service with an endpoint takes no security_group.ingress: its clients group and endpoint.cidr_blocks say who reaches it."
  }
}
