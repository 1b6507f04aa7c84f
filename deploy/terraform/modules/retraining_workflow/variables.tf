variable "name" {
  description = "Name of the state machine (shown in the notifications' subjects)."
  type        = string
}

variable "partition" {
  description = "AWS partition of the service integrations' ARNs (aws, aws-cn, aws-us-gov)."
  type        = string
  default     = "aws"
}

variable "cluster_arn" {
  description = "ECS cluster of the training tasks."
  type        = string
}

variable "task_definition" {
  description = "Training task definition family (its latest active revision runs)."
  type        = string
}

variable "container_name" {
  description = "Container of the task definition that runs `python -m training`."
  type        = string
}

variable "capacity_provider" {
  description = "Capacity provider of the training tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the training tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the training tasks."
  type        = list(string)
}

variable "topic_arn" {
  description = "SNS topic of the outcome notifications."
  type        = string
}

variable "loop_bucket" {
  description = "The learning loop's bucket, where the steps leave their run summaries."
  type        = string
}

variable "run_summary_prefix" {
  description = "Prefix of the run summaries in the loop's bucket (one folder per execution)."
  type        = string
  default     = "runs/"
  validation {
    condition     = can(regex("^([A-Za-z0-9_.-]+/)+$", var.run_summary_prefix))
    error_message = "run_summary_prefix must be a relative folder ending with a slash, e.g. runs/."
  }
}

variable "task_log_group" {
  description = "Log group of the training tasks (named in the notifications)."
  type        = string
}

variable "model_alias" {
  description = "Alias the gate moves to a better version."
  type        = string
}

variable "step_timeout_seconds" {
  description = "Longest the monitor or the dataset build may run."
  type        = number
  default     = 1800
}

variable "train_timeout_seconds" {
  description = "Longest a training (or a command given in the execution input) may run."
  type        = number
  default     = 3600
}

variable "max_retries" {
  description = "Retries of a failed or unplaceable task, per step."
  type        = number
  default     = 2
}
