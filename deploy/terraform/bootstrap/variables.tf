variable "region" {
  description = "Region of the state bucket."
  type        = string
  default     = "eu-west-1"
}

variable "github_repository" {
  description = "OWNER/REPO of the GitHub repository whose workflows may assume the roles."
  type        = string
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
  description = "Managed policies of the plan role (terraform plan reads every resource)."
  type        = list(string)
  default     = ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
}

variable "deploy_policy_arns" {
  description = "Managed policies of the deploy role: what your organisation lets a deployer create (VPC, ECS, RDS, Kinesis, IAM roles, ...). No default on purpose."
  type        = list(string)
}
