variable "name" {
  description = "Name of the service, task family, roles and log group."
  type        = string
}

variable "platform" {
  description = "What the consumer's own resources take from the platform (live/main.tf's local.platform; Terraform drops the rest): the ECS cluster (the autoscaling target), the VPC's CIDR (Prometheus scrapes from it), the project key (streams, captures), tags."
  type = object({
    cluster_name   = string
    vpc_cidr_block = string
    kms_key_arn    = string
    tags           = map(string)
  })
}

variable "service_name" {
  description = "The consumer's ECS service (live/main.tf's modules/ecs_task call): the autoscaling target, created once the service is."
  type        = string
}

variable "extra_security_group_ids" {
  description = "More security groups for the tasks (the MLflow clients group)."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "Consumer image, <repository url>:<commit sha>."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository the image comes from."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 2048
}

variable "memory" {
  description = "Task memory in MiB (the JVM plus one Python processor of up to 350 MB per shard lease)."
  type        = number
  default     = 4096
}

variable "min_count" {
  description = "Fewest consumer tasks."
  type        = number
  default     = 2
}

variable "max_count" {
  description = "Most consumer tasks (no more than the input stream's shards can use)."
  type        = number
  default     = 4
}

variable "cpu_target_percent" {
  description = "Average CPU the target tracking policy aims for."
  type        = number
  default     = 60
}

variable "iterator_age_scale_out_ms" {
  description = "Iterator age (ms) past which a worker is added."
  type        = number
  default     = 60000
}

variable "streams" {
  description = "Name and ARN of each stream (modules/streams' output): the input is read, predictions and dead_letter are written."
  type = object({
    input       = object({ name = string, arn = string })
    predictions = object({ name = string, arn = string })
    dead_letter = object({ name = string, arn = string })
  })
}

variable "application_name" {
  description = "KCL application name: names the lease, coordinator state and worker metrics tables and the CloudWatch namespace."
  type        = string
}

variable "initial_position" {
  description = "Where a new lease starts reading: TRIM_HORIZON or LATEST."
  type        = string
  default     = "TRIM_HORIZON"
}

variable "mlflow" {
  description = "The registry (modules/mlflow's clients[...]): its tracking URI, the consumer's user (READ on the registered model) and the Secrets Manager secret of that user's password."
  type = object({
    tracking_uri        = string
    username            = string
    password_secret_arn = string
  })
}

variable "model_name" {
  description = "Registered model name."
  type        = string
}

variable "model_alias" {
  description = "Registry alias of the serving version."
  type        = string
}

variable "model_poll_interval_seconds" {
  description = "How often the processors poll the alias for a new version."
  type        = number
  default     = 30
}

variable "log_level" {
  description = "DEBUG, INFO, WARNING or ERROR."
  type        = string
  default     = "INFO"
}

variable "loop_uri" {
  description = "LOOP_URI: the learning loop's store, s3://<bucket>/ (captures go under captures/)."
  type        = string
}

variable "loop_bucket_arn" {
  description = "ARN of the loop's bucket (the task role may PutObject under captures/<model>/ only)."
  type        = string
}

variable "capture_enabled" {
  description = "CAPTURE_ENABLED: capture every scored batch to the loop's store."
  type        = bool
  default     = true
}
