variable "name" {
  description = "Name of the task family, its roles (NAME-execution, NAME-task), its log group (/dropout/NAME) and its service."
  type        = string
}

variable "platform" {
  description = "Where the task runs and what its resources share (live/main.tf's local.platform): the ECS cluster (its capacity provider, FARGATE or EC2), the VPC and its private subnets, the project key (log group, images, secrets), log retention, tags."
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

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
}

variable "containers" {
  description = "Container definitions (ECS JSON keys): name, image, user, environment, secrets, ports, health check... essential unless set to false; readonlyRootFilesystem and the awslogs configuration are added."
  type        = any
  validation {
    condition     = length(var.containers) > 0 && alltrue([for c in var.containers : can(c.name) && can(c.image)])
    error_message = "containers is a list of container definitions, each with a name and an image."
  }
}

variable "volumes" {
  description = "Names of the task's (ephemeral) volumes: the paths its containers write to."
  type        = list(string)
  default     = []
}

variable "ecr_repository_arns" {
  description = "ECR repositories the images come from (the execution role may pull them); empty: public images."
  type        = list(string)
  default     = []
}

variable "secret_arns" {
  description = "Secrets Manager secrets the containers' `secrets` read (the execution role may read these only)."
  type        = list(string)
  default     = []
}

variable "task_policy_name" {
  description = "Name of the task role's inline policy; null: the task calls no AWS API."
  type        = string
  default     = null
}

variable "task_policy_json" {
  description = "The task role's inline policy: the json of the caller's aws_iam_policy_document."
  type        = string
  default     = null
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
