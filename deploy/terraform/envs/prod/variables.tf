variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "image_tag" {
  description = "Commit SHA of the images to run (set by CD or scripts/aws/tf.sh)."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the VPC."
  type        = string
}

variable "az_count" {
  description = "Availability zones."
  type        = number
}

variable "one_nat_gateway_per_az" {
  description = "One NAT gateway per zone."
  type        = bool
}

variable "stream_capacity_mode" {
  description = "PROVISIONED or ON_DEMAND."
  type        = string
}

variable "input_shard_count" {
  description = "Shards of the input stream (PROVISIONED)."
  type        = number
}

variable "stream_retention_hours" {
  description = "Stream retention (hours)."
  type        = number
}

variable "ecs_capacity_type" {
  description = "FARGATE or EC2."
  type        = string
}

variable "consumer_min_count" {
  description = "Fewest consumer tasks."
  type        = number
}

variable "consumer_max_count" {
  description = "Most consumer tasks."
  type        = number
}

variable "training_schedule_expression" {
  description = "When the model is retrained."
  type        = string
}

variable "training_schedule_enabled" {
  description = "Whether the schedule starts runs."
  type        = bool
}

variable "notification_emails" {
  description = "Addresses told about training outcomes."
  type        = list(string)
  default     = []
}

variable "mlflow_db_instance_class" {
  description = "RDS instance class of the MLflow database."
  type        = string
}

variable "mlflow_db_multi_az" {
  description = "Multi-AZ MLflow database."
  type        = bool
}

variable "mlflow_db_backup_retention_days" {
  description = "Backup retention of the MLflow database (days)."
  type        = number
}

variable "allow_destroy_with_data" {
  description = "Let destroy delete data stores with their contents (throwaway environments only)."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of every log group (days)."
  type        = number
}
