variable "name" {
  description = "Alias (alias/<name>) and description prefix of the key."
  type        = string
}

variable "deletion_window_in_days" {
  description = "Waiting period before a scheduled key deletion takes effect (7-30 days)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of the key."
  type        = map(string)
  default     = {}
}

variable "autoscaling_service_linked_role_arn" {
  description = "ARN of AWSServiceRoleForAutoScaling when an Auto Scaling group launches instances with volumes encrypted by this key (ECS EC2 capacity); null otherwise. The role must exist before the key policy names it."
  type        = string
  default     = null
}
