variable "name" {
  description = "Name of the task family, state machine, schedule, topic and roles."
  type        = string
}

variable "platform" {
  description = "What the training's own resources take from the platform (live/main.tf's local.platform; Terraform drops the rest): the ECS cluster's name (the state machine may stop its tasks), the project key (logs, topic, schedule), log retention, tags."
  type = object({
    cluster_name       = string
    kms_key_arn        = string
    log_retention_days = number
    tags               = map(string)
  })
}

variable "task" {
  description = "The training task as live/main.tf's modules/ecs_task call made it: the roles the state machine passes, and what its RunTask takes (the family, the security group, the log group and the placement: cluster, capacity provider, subnets)."
  type = object({
    execution_role_arn = string
    task_role_arn      = string
    family             = string
    security_group_id  = string
    log_group_name     = string
    placement = object({
      cluster_arn       = string
      capacity_provider = string
      subnet_ids        = list(string)
    })
  })
}

variable "extra_security_group_ids" {
  description = "More security groups for the task (the MLflow clients group)."
  type        = list(string)
  default     = []
}

variable "image" {
  description = "Training image, <repository url>:<commit sha>."
  type        = string
}

variable "ecr_repository_arn" {
  description = "ECR repository the image comes from."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (the full model search uses every core it gets)."
  type        = number
  default     = 4096
}

variable "memory" {
  description = "Task memory in MiB."
  type        = number
  default     = 8192
}

variable "command" {
  description = "Command of the training container (arguments of `python -m training`)."
  type        = list(string)
  default     = ["train"]
}

variable "task_timeout_seconds" {
  description = "Longest a training task may run before the state machine stops waiting."
  type        = number
  default     = 3600
}

variable "step_timeout_seconds" {
  description = "Longest the monitor or the dataset build may run."
  type        = number
  default     = 1800
}

variable "max_retries" {
  description = "Retries of a failed or unplaceable training task."
  type        = number
  default     = 2
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression, e.g. cron(0 3 ? * MON *) or rate(7 days)."
  type        = string
}

variable "schedule_timezone" {
  description = "Time zone of the schedule expression."
  type        = string
  default     = "UTC"
}

variable "schedule_enabled" {
  description = "Whether the schedule starts runs (runs can always be started by hand)."
  type        = bool
  default     = true
}

variable "notification_emails" {
  description = "Addresses subscribed to the outcome topic (each confirms by email)."
  type        = list(string)
  default     = []
}

variable "mlflow" {
  description = "The registry (modules/mlflow's clients[...]): its tracking URI, the training task's user (MANAGE on the experiment and the registered model) and the Secrets Manager secret of that user's password."
  type = object({
    tracking_uri        = string
    username            = string
    password_secret_arn = string
  })
}

variable "experiment_name" {
  description = "MLflow experiment of the training runs."
  type        = string
}

variable "model_name" {
  description = "Registered model name."
  type        = string
}

variable "model_alias" {
  description = "Alias the gate moves to a better version."
  type        = string
}

variable "gate_tolerance" {
  description = "ROC-AUC a new version may lose against the champion and still be promoted."
  type        = number
  default     = 0.005
}

variable "loop_bucket" {
  description = "Name of the learning loop's bucket (run summaries are read from runs/ there)."
  type        = string
}

variable "loop_bucket_arn" {
  description = "ARN of the learning loop's bucket."
  type        = string
}

variable "loop_uri" {
  description = "LOOP_URI: the learning loop's store, s3://<bucket>/."
  type        = string
}

variable "uci_mirror_uri" {
  description = "UCI_MIRROR_URI: the checked copy of the UCI file in the loop's bucket (scripts/aws/seed-data.sh)."
  type        = string
}

variable "pushgateway_url" {
  description = "PUSHGATEWAY_URL: where the monitor pushes its figures for Prometheus."
  type        = string
}
