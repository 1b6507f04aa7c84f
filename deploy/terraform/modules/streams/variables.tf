variable "names" {
  description = "Name of each stream: input (student events), predictions and dead_letter (the consumer's outputs)."
  type = object({
    input       = string
    predictions = string
    dead_letter = string
  })
}

variable "capacity_mode" {
  description = "PROVISIONED (fixed shard counts) or ON_DEMAND."
  type        = string
  default     = "PROVISIONED"
  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.capacity_mode)
    error_message = "capacity_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "input_shard_count" {
  description = "Shards of the input stream in PROVISIONED mode (one consumer worker per shard at most does work)."
  type        = number
  default     = 4
}

variable "output_shard_count" {
  description = "Shards of each output stream in PROVISIONED mode."
  type        = number
  default     = 2
}

variable "retention_hours" {
  description = "Retention of every stream, in hours (24-8760)."
  type        = number
  default     = 24
}

variable "kms_key_arn" {
  description = "Customer managed key that encrypts the streams."
  type        = string
}

variable "tags" {
  description = "Tags of every stream."
  type        = map(string)
  default     = {}
}
