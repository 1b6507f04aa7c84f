variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

variable "github_repository" {
  description = "OWNER/REPO of the GitHub repository whose workflows may assume the roles."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", var.github_repository))
    error_message = "github_repository must be OWNER/REPO."
  }
}

variable "github_owner_id" {
  description = "Numeric ID of the repository's owner (gh api users/OWNER --jq .id): trusts the immutable-ID subject repo:OWNER@ID/REPO@ID:..., which repositories created since July 2026 send by default. Null: classic subject only."
  type        = string
  default     = null
  validation {
    condition     = var.github_owner_id == null || can(regex("^[0-9]+$", var.github_owner_id))
    error_message = "github_owner_id is a number (the owner's account ID)."
  }
}

variable "github_repository_id" {
  description = "Numeric ID of the repository (gh api repos/OWNER/REPO --jq .id); required with github_owner_id."
  type        = string
  default     = null
  validation {
    # Cross-variable validation: Terraform >= 1.9.
    condition     = (var.github_repository_id == null) == (var.github_owner_id == null) && (var.github_repository_id == null || can(regex("^[0-9]+$", var.github_repository_id)))
    error_message = "github_repository_id is a number (the repository's ID), given together with github_owner_id."
  }
}

variable "trust_classic_subject" {
  description = "Also trust the classic subject repo:OWNER/REPO:... Turn off once the repository sends immutable-ID subjects (then a recreated repository of the same name cannot assume the roles)."
  type        = bool
  default     = true
  validation {
    condition     = var.trust_classic_subject || var.github_owner_id != null
    error_message = "Without the classic subject, give github_owner_id and github_repository_id."
  }
}

variable "github_environments" {
  description = "GitHub environments whose jobs may assume the deploy role."
  type        = list(string)
  default     = ["stg", "prod"]
}

variable "create_github_oidc_provider" {
  description = "Create the GitHub OIDC provider; false when the account has it already (only one may exist)."
  type        = bool
  default     = true
}

variable "plan_policy_arns" {
  description = "Extra managed policies of the plan role, on top of its scoped plan_read policy (for resources you add to the stack). Never ReadOnlyAccess: pull requests assume this role, and that policy reads data (objects, secrets, items, records)."
  type        = list(string)
  default     = []
  validation {
    condition     = !anytrue([for arn in var.plan_policy_arns : endswith(arn, ":policy/ReadOnlyAccess")])
    error_message = "ReadOnlyAccess reads data (S3 objects, table items, stream records): extend plan_read instead."
  }
}

variable "deploy_policy_arns" {
  description = "Managed policies of the deploy role: what your organisation lets a deployer create (VPC, ECS, RDS, Kinesis, IAM roles, ...). No default on purpose."
  type        = list(string)
}
