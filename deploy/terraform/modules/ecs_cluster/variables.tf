variable "name" {
  description = "Name of the ECS cluster."
  type        = string
}

variable "capacity_type" {
  description = "FARGATE or EC2."
  type        = string
  default     = "FARGATE"
  validation {
    condition     = contains(["FARGATE", "EC2"], var.capacity_type)
    error_message = "capacity_type must be FARGATE or EC2."
  }
}

variable "vpc_id" {
  description = "VPC of the container instances (EC2 capacity)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the container instances (EC2 capacity)."
  type        = list(string)
}

variable "ec2_instance_type" {
  description = "Instance type of the container instances (EC2 capacity)."
  type        = string
  default     = "m7i.large"
}

variable "ec2_min_size" {
  description = "Minimum number of container instances (EC2 capacity)."
  type        = number
  default     = 1
}

variable "ec2_max_size" {
  description = "Maximum number of container instances (EC2 capacity)."
  type        = number
  default     = 6
}

variable "kms_key_arn" {
  description = "Customer managed key that encrypts the instances' volumes."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
