variable "name" {
  description = "Name of the MLflow service, database, bucket prefix and roles."
  type        = string
}

variable "platform" {
  description = "What the database, the bucket and the secrets take from the platform (live/main.tf's local.platform; Terraform drops the rest): the VPC (its CIDR reaches the database) and its private subnets, the project key (bucket, database, secrets), tags."
  type = object({
    vpc_id         = string
    vpc_cidr_block = string
    subnet_ids     = list(string)
    kms_key_arn    = string
    tags           = map(string)
  })
}

variable "server_security_group_id" {
  description = "The MLflow server tasks' security group (live/main.tf's modules/ecs_task call): the only one the database admits."
  type        = string
}

variable "dns_namespace" {
  description = "Private DNS namespace; the server answers at mlflow.<namespace>:5000."
  type        = string
}

variable "image" {
  description = "MLflow image, <repository url>:<commit sha>."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository the image comes from."
  type        = string
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory in MiB (the server needs about 0.5 GB with the job runner off)."
  type        = number
  default     = 2048
}

variable "workers" {
  description = "Server worker processes."
  type        = number
  default     = 2
}

variable "desired_count" {
  description = "Server tasks."
  type        = number
  default     = 1
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage (GiB); storage autoscaling may grow it to four times this."
  type        = number
  default     = 20
}

variable "db_multi_az" {
  description = "Standby in a second zone."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Automated backup retention (days)."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Protect the database from deletion (and take a final snapshot)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Allow `terraform destroy` to empty the artifact bucket."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted artifact version is kept."
  type        = number
  default     = 90
}

variable "operator_cidr_blocks" {
  description = "CIDRs of the operators' VPN or bastion that may reach the MLflow UI and API (port 5000); nothing else in the VPC can."
  type        = list(string)
  default     = []
}

variable "trainer_username" {
  description = "MLflow user of the training task: MANAGE on the experiment and the registered model."
  type        = string
  default     = "dropout-trainer"
}

variable "consumer_username" {
  description = "MLflow user of the consumer: READ on the experiment and the registered model."
  type        = string
  default     = "dropout-consumer"
}

variable "experiment_name" {
  description = "MLflow experiment of the training runs (created and granted by the bootstrap)."
  type        = string
}

variable "model_name" {
  description = "Registered model (created and granted by the bootstrap)."
  type        = string
}
