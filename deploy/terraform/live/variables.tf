variable "environment" {
  description = "Environment name (stg, prod; set by envs/ENV.tfvars): prefixes every resource as dropout-<environment>."
  type        = string
  validation {
    # The environments scripts/aws (ENVIRONMENTS), the bootstrap's deploy role and CD know; a
    # typo would otherwise plan a whole new stack.
    condition     = contains(["stg", "prod"], var.environment)
    error_message = "environment must be stg or prod (envs/ENV.tfvars and envs/ENV.backend.hcl)."
  }
}

variable "region" {
  description = "AWS region of the environment."
  type        = string
}

variable "image_tag" {
  description = "Tag of all three images: the commit SHA that CD built and pushed."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR block of the environment's VPC."
  type        = string
}

variable "az_count" {
  description = "Availability zones (2 or 3)."
  type        = number
}

variable "one_nat_gateway_per_az" {
  description = "One NAT gateway per zone instead of one shared."
  type        = bool
}

variable "input_stream_name" {
  description = "Input stream (student events), after the dropout-<environment>- prefix."
  type        = string
  default     = "events"
}

variable "predictions_stream_name" {
  description = "Predictions stream, after the dropout-<environment>- prefix."
  type        = string
  default     = "predictions"
}

variable "dead_letter_stream_name" {
  description = "Dead-letter stream, after the dropout-<environment>- prefix."
  type        = string
  default     = "dead-letters"
}

variable "stream_capacity_mode" {
  description = "PROVISIONED or ON_DEMAND."
  type        = string
}

variable "input_shard_count" {
  description = "Shards of the input stream (PROVISIONED)."
  type        = number
}

variable "output_shard_count" {
  description = "Shards of each output stream (PROVISIONED)."
  type        = number
  default     = 2
}

variable "stream_retention_hours" {
  description = "Retention of the streams (hours)."
  type        = number
}

variable "ecs_capacity_type" {
  description = "FARGATE or EC2."
  type        = string
}

variable "create_autoscaling_service_linked_role" {
  description = "EC2 capacity: create AWSServiceRoleForAutoScaling (false when the account has it already)."
  type        = bool
  default     = true
}

variable "ec2_instance_type" {
  description = "Container instance type (EC2 capacity)."
  type        = string
  default     = "m7i.large"
}

variable "ec2_min_size" {
  description = "Fewest container instances (EC2 capacity)."
  type        = number
  default     = 1
}

variable "ec2_max_size" {
  description = "Most container instances (EC2 capacity)."
  type        = number
  default     = 6
}

variable "consumer_cpu" {
  description = "Consumer task CPU units."
  type        = number
  default     = 2048
}

variable "consumer_memory" {
  description = "Consumer task memory (MiB)."
  type        = number
  default     = 4096
}

variable "consumer_min_count" {
  description = "Fewest consumer tasks."
  type        = number
}

variable "consumer_max_count" {
  description = "Most consumer tasks (at most the input shard count does work)."
  type        = number
}

variable "consumer_cpu_target_percent" {
  description = "CPU target of the consumer's target tracking policy."
  type        = number
  default     = 60
}

variable "iterator_age_scale_out_ms" {
  description = "Input stream iterator age (ms) that adds a consumer task."
  type        = number
  default     = 60000
}

variable "kcl_application_name" {
  description = "KCL application name after the dropout-<environment>- prefix: names the KCL's DynamoDB tables and CloudWatch namespace, so environments never share leases."
  type        = string
  default     = "consumer"
}

variable "model_name" {
  description = "Registered model name."
  type        = string
  default     = "student-dropout"
}

variable "model_alias" {
  description = "Alias of the serving version."
  type        = string
  default     = "champion"
}

variable "experiment_name" {
  description = "MLflow experiment of the training runs."
  type        = string
  default     = "student-dropout"
}

variable "gate_tolerance" {
  description = "ROC-AUC tolerance of the champion gate."
  type        = number
  default     = 0.005
}

variable "log_level" {
  description = "Consumer log level."
  type        = string
  default     = "INFO"
}

variable "training_cpu" {
  description = "Training task CPU units."
  type        = number
  default     = 4096
}

variable "training_memory" {
  description = "Training task memory (MiB)."
  type        = number
  default     = 8192
}

variable "training_timeout_seconds" {
  description = "Longest a training task may run."
  type        = number
  default     = 3600
}

variable "training_max_retries" {
  description = "Retries of a failed training task."
  type        = number
  default     = 2
}

variable "training_schedule_expression" {
  description = "When the model is retrained (EventBridge Scheduler expression)."
  type        = string
}

variable "training_schedule_timezone" {
  description = "Time zone of the training schedule."
  type        = string
  default     = "UTC"
}

variable "training_schedule_enabled" {
  description = "Whether the schedule starts training runs."
  type        = bool
}

variable "notification_emails" {
  description = "Addresses told about every training outcome."
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

variable "mlflow_operator_cidr_blocks" {
  description = "CIDRs of your VPN or bastion that may open the MLflow UI (port 5000). Empty: only the consumer and training tasks reach it."
  type        = list(string)
  default     = []
}

variable "capture_enabled" {
  description = "Capture every scored batch to the learning loop's bucket (CAPTURE_ENABLED of the consumer)."
  type        = bool
  default     = true
}

variable "uci_sha256" {
  description = "sha256 of the UCI data file (common/data_files.py UCI_SHA256): the mirror's key and the training job's check."
  type        = string
  default     = "3ef126de5cefff26eb11fbb4237f1a1401cb64b488e2f1d598c23cedeb4c45ae"
}

variable "loop_capture_retention_days" {
  description = "Days the captured student records are kept (one academic year plus a term by default)."
  type        = number
  default     = 400
}

variable "loop_outcome_retention_days" {
  description = "Days the imported outcomes are kept."
  type        = number
  default     = 400
}

variable "loop_dataset_retention_days" {
  description = "Days the institution's labelled datasets are kept (models trained on them stay reproducible)."
  type        = number
  default     = 1095
}

variable "outcomes_importer_principal_arns" {
  description = "Principals (a registrar's role) that may assume a role allowed only to upload outcomes; empty: no such role."
  type        = list(string)
  default     = []
}

variable "pushgateway_scraper_cidr_blocks" {
  description = "CIDRs that may scrape the Pushgateway (port 9091); null: the whole VPC, like the consumers' metrics port."
  type        = list(string)
  default     = null
}

variable "allow_destroy_with_data" {
  description = "Let `terraform destroy` delete the database (no final snapshot kept), the artifact bucket and image repositories with their contents. Only for throwaway environments."
  type        = bool
}

variable "log_retention_days" {
  description = "Retention of every log group (days)."
  type        = number
}

variable "tags" {
  description = "Extra tags of every resource."
  type        = map(string)
  default     = {}
}
