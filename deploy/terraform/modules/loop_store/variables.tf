variable "name" {
  description = "Prefix of the bucket name (the account ID is appended) and of the importer role."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer managed key of every object (SSE-KMS, bucket key)."
  type        = string
}

variable "uci_sha256" {
  description = "sha256 of the UCI data file (common/data_files.py UCI_SHA256): names the mirror's key."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.uci_sha256))
    error_message = "uci_sha256 must be a 64-character lowercase hex sha256 digest."
  }
}

variable "capture_retention_days" {
  description = "Days a capture object (the scored student records) is kept. Default: one academic year plus a term, so a year's predictions can still be joined with the outcomes of the term after."
  type        = number
  default     = 400
  validation {
    condition     = var.capture_retention_days >= 1
    error_message = "capture_retention_days must be at least 1."
  }
}

variable "outcome_retention_days" {
  description = "Days an imported outcome file is kept (as long as the captures it is joined with)."
  type        = number
  default     = 400
  validation {
    condition     = var.outcome_retention_days >= 1
    error_message = "outcome_retention_days must be at least 1."
  }
}

variable "dataset_retention_days" {
  description = "Days a labelled institution dataset is kept: the models trained on it stay reproducible for that long."
  type        = number
  default     = 1095
  validation {
    condition     = var.dataset_retention_days >= 1
    error_message = "dataset_retention_days must be at least 1."
  }
}

variable "run_summary_retention_days" {
  description = "Days the retraining workflow's run summaries (aggregate figures, no student record) are kept."
  type        = number
  default     = 90
  validation {
    condition     = var.run_summary_retention_days >= 1
    error_message = "run_summary_retention_days must be at least 1."
  }
}

variable "noncurrent_version_days" {
  description = "Days an overwritten, deleted or expired object survives as a noncurrent version."
  type        = number
  default     = 30
  validation {
    condition     = var.noncurrent_version_days >= 1
    error_message = "noncurrent_version_days must be at least 1."
  }
}

variable "outcomes_importer_principal_arns" {
  description = "IAM principals (a registrar's role, an account) that may assume a role which can only upload under outcomes/. Empty: no role (the policy is still an output)."
  type        = list(string)
  default     = []
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the bucket with its objects (throwaway environments only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
