# Environment "stg". Initialise with the shared state bucket, then plan/apply with the image
# tag that CD pushed (scripts/aws/tf.sh does both):
#   terraform init -backend-config=backend.hcl -backend-config="bucket=$TF_STATE_BUCKET"
#   terraform plan -var "image_tag=$GIT_SHA" -out plan.tfplan
terraform {
  required_version = ">= 1.11"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80, < 6.0"
    }
  }
  # Partial configuration: key, region, encryption and locking in backend.hcl, the bucket
  # (created once by deploy/terraform/bootstrap) on the command line.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      ManagedBy = "terraform"
      Stack     = "dropout-stg"
    }
  }
}

module "stack" {
  source = "../../stack"

  environment                     = "stg"
  image_tag                       = var.image_tag
  vpc_cidr_block                  = var.vpc_cidr_block
  az_count                        = var.az_count
  one_nat_gateway_per_az          = var.one_nat_gateway_per_az
  stream_capacity_mode            = var.stream_capacity_mode
  input_shard_count               = var.input_shard_count
  stream_retention_hours          = var.stream_retention_hours
  ecs_capacity_type               = var.ecs_capacity_type
  consumer_min_count              = var.consumer_min_count
  consumer_max_count              = var.consumer_max_count
  training_schedule_expression    = var.training_schedule_expression
  training_schedule_enabled       = var.training_schedule_enabled
  notification_emails             = var.notification_emails
  mlflow_db_instance_class        = var.mlflow_db_instance_class
  mlflow_db_multi_az              = var.mlflow_db_multi_az
  mlflow_db_backup_retention_days = var.mlflow_db_backup_retention_days
  allow_destroy_with_data         = var.allow_destroy_with_data
  log_retention_days              = var.log_retention_days
}
