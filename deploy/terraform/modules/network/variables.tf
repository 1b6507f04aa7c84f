variable "name" {
  description = "Name prefix of the VPC and its parts."
  type        = string
}

variable "cidr_block" {
  description = "CIDR block of the VPC (a /16 to /20; subnets are /4 slices of it)."
  type        = string
}

variable "az_count" {
  description = "Availability zones to spread the subnets over (2 or 3)."
  type        = number
  default     = 2
  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "one_nat_gateway_per_az" {
  description = "One NAT gateway per zone (highly available) instead of a single shared one (cheaper)."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed key that encrypts the flow log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the flow log group."
  type        = number
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
