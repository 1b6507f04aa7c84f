variable "name" {
  description = "Name of the bucket (dropout-..., with the account ID: bucket names are global)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed key of every object (SSE-KMS, bucket key)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days an overwritten, deleted or expired object survives as a noncurrent version."
  type        = number
}

variable "expire_delete_markers" {
  description = "Also remove delete markers that no noncurrent version is left behind."
  type        = bool
  default     = false
}

variable "expiration" {
  description = "Objects that expire, by rule name: those under prefix, days after they were written."
  type        = map(object({ prefix = string, days = number }))
  default     = {}
}

variable "policy_documents" {
  description = "More statements of the bucket policy: the json of the caller's aws_iam_policy_document (deny statements)."
  type        = list(string)
  default     = []
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its objects (throwaway environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of the bucket."
  type        = map(string)
  default     = {}
}
