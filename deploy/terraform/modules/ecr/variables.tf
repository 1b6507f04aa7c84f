variable "name_prefix" {
  description = "Repositories are named <name_prefix>/<image>."
  type        = string
}

variable "repository_names" {
  description = "Images that get a repository."
  type        = list(string)
  default     = ["consumer", "training", "mlflow"]
}

variable "keep_images" {
  description = "Images kept per repository (older ones expire)."
  type        = number
  default     = 50
}

variable "force_delete" {
  description = "Allow `terraform destroy` to delete repositories that still hold images."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "Customer managed key that encrypts the images."
  type        = string
}

variable "tags" {
  description = "Tags of every repository."
  type        = map(string)
  default     = {}
}
