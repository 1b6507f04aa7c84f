variable "name" {
  description = "Name of the role."
  type        = string
}

variable "service" {
  description = "Service principal that assumes the role, e.g. ecs-tasks.amazonaws.com."
  type        = string
  validation {
    condition     = endswith(var.service, ".amazonaws.com")
    error_message = "service must be an AWS service principal (NAME.amazonaws.com)."
  }
}

variable "policy_name" {
  description = "Name of the inline policy; null: the role has no permission of its own."
  type        = string
  default     = null
}

variable "policy_json" {
  description = "The inline policy: the json of the caller's aws_iam_policy_document (with policy_name)."
  type        = string
  default     = null
  validation {
    # Without a name the policy would be dropped silently; a name without a policy grants nothing.
    condition     = var.policy_name == null ? var.policy_json == null : var.policy_json != null
    error_message = "policy_name and policy_json go together: set both, or neither (no policy)."
  }
}

variable "tags" {
  description = "Tags of the role."
  type        = map(string)
  default     = {}
}
