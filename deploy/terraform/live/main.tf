# One environment of the dropout early-warning system: network, key, streams, image
# repositories, ECS cluster, MLflow, the learning loop's bucket, the Pushgateway, the consumer
# service and the scheduled retraining workflow.
#
# The root configuration of every environment: envs/ENV.tfvars says what differs (environment,
# region, sizes), envs/ENV.backend.hcl where its state is. Initialise with the shared state
# bucket, then plan/apply with the image tag that CD pushed (scripts/aws/tf.sh does both, and
# always pairs the two files of one environment):
#   terraform init -reconfigure -backend-config=envs/prod.backend.hcl \
#     -backend-config="bucket=$TF_STATE_BUCKET" -backend-config="region=eu-west-1"
#   terraform plan -var-file=envs/prod.tfvars -var "image_tag=$GIT_SHA" -out prod.tfplan
provider "aws" {
  region = var.region
  default_tags {
    tags = {
      ManagedBy = "terraform"
      Stack     = local.name
    }
  }
}

locals {
  name = "dropout-${var.environment}"
  tags = merge(var.tags, { Project = "student-dropout-early-warning", Environment = var.environment })

  images = {
    for image in ["consumer", "training", "mlflow"] :
    image => "${module.ecr.repository_urls[image]}:${var.image_tag}"
  }

  # Where the tasks run and what their resources share: the cluster, the VPC, the project key,
  # log retention and tags travel together to each task's modules/ecs_task (below) as its
  # platform input; MLflow, the consumer and training take the part their own resources need.
  platform = {
    cluster_name             = module.cluster.cluster_name
    cluster_arn              = module.cluster.cluster_arn
    capacity_provider        = module.cluster.capacity_provider
    requires_compatibilities = module.cluster.requires_compatibilities
    vpc_id                   = module.network.vpc_id
    vpc_cidr_block           = module.network.vpc_cidr_block
    subnet_ids               = module.network.private_subnet_ids
    kms_key_arn              = module.kms.key_arn
    log_retention_days       = var.log_retention_days
    tags                     = local.tags
  }

  ec2_capacity = var.ecs_capacity_type == "EC2"
  # Its ARN is fixed; naming the resource (when this stack creates it) orders it before the key.
  autoscaling_role_arn = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

# Ties the state to its environment: the first apply records var.environment here, and one
# environment's tfvars planned against another's state (a wrong backend file) would replace this
# resource, which prevent_destroy turns into a plan error before anything is touched. Destroying
# an environment on purpose: `terraform state rm terraform_data.environment` first.
resource "terraform_data" "environment" {
  input            = var.environment
  triggers_replace = var.environment

  lifecycle {
    prevent_destroy = true
  }
}

# EC2 capacity: the key policy must name Auto Scaling's service-linked role, and KMS rejects a
# policy naming a role that does not exist yet. An account that has the role already (any Auto
# Scaling group made it) sets create_autoscaling_service_linked_role = false.
resource "aws_iam_service_linked_role" "autoscaling" {
  count            = local.ec2_capacity && var.create_autoscaling_service_linked_role ? 1 : 0
  aws_service_name = "autoscaling.amazonaws.com"
  tags             = local.tags
}

module "kms" {
  source = "../modules/kms"
  name   = local.name
  autoscaling_service_linked_role_arn = local.ec2_capacity ? coalesce(
    one(aws_iam_service_linked_role.autoscaling[*].arn), local.autoscaling_role_arn
  ) : null
  tags = local.tags
}

module "network" {
  source                 = "../modules/network"
  name                   = local.name
  cidr_block             = var.vpc_cidr_block
  az_count               = var.az_count
  one_nat_gateway_per_az = var.one_nat_gateway_per_az
  kms_key_arn            = module.kms.key_arn
  log_retention_days     = var.log_retention_days
  tags                   = local.tags
}

module "streams" {
  source = "../modules/streams"
  names = {
    input       = "${local.name}-${var.input_stream_name}"
    predictions = "${local.name}-${var.predictions_stream_name}"
    dead_letter = "${local.name}-${var.dead_letter_stream_name}"
  }
  capacity_mode      = var.stream_capacity_mode
  input_shard_count  = var.input_shard_count
  output_shard_count = var.output_shard_count
  retention_hours    = var.stream_retention_hours
  kms_key_arn        = module.kms.key_arn
  tags               = local.tags
}

module "ecr" {
  source       = "../modules/ecr"
  name_prefix  = local.name
  force_delete = var.allow_destroy_with_data
  kms_key_arn  = module.kms.key_arn
  tags         = local.tags
}

module "cluster" {
  source            = "../modules/ecs_cluster"
  name              = local.name
  capacity_type     = var.ecs_capacity_type
  vpc_id            = module.network.vpc_id
  subnet_ids        = module.network.private_subnet_ids
  ec2_instance_type = var.ec2_instance_type
  ec2_min_size      = var.ec2_min_size
  ec2_max_size      = var.ec2_max_size
  kms_key_arn       = module.kms.key_arn
  tags              = local.tags
}

module "mlflow" {
  source                   = "../modules/mlflow"
  name                     = "${local.name}-mlflow"
  platform                 = local.platform
  server_security_group_id = module.mlflow_task.security_group_id
  dns_namespace            = "${var.environment}.dropout.internal"
  image                    = local.images["mlflow"]
  ecr_repository_arn       = module.ecr.repository_arns["mlflow"]
  db_instance_class        = var.mlflow_db_instance_class
  db_multi_az              = var.mlflow_db_multi_az
  db_backup_retention_days = var.mlflow_db_backup_retention_days
  deletion_protection      = !var.allow_destroy_with_data
  force_destroy            = var.allow_destroy_with_data
  operator_cidr_blocks     = var.mlflow_operator_cidr_blocks
  experiment_name          = var.experiment_name
  model_name               = var.model_name
}

# The learning loop's store (captures, outcomes, datasets, run summaries) and the Pushgateway
# the monitor pushes its figures to.
module "loop_store" {
  source                           = "../modules/loop_store"
  name                             = "${local.name}-loop"
  kms_key_arn                      = module.kms.key_arn
  uci_sha256                       = var.uci_sha256
  capture_retention_days           = var.loop_capture_retention_days
  outcome_retention_days           = var.loop_outcome_retention_days
  dataset_retention_days           = var.loop_dataset_retention_days
  outcomes_importer_principal_arns = var.outcomes_importer_principal_arns
  force_destroy                    = var.allow_destroy_with_data
  tags                             = local.tags
}

module "pushgateway" {
  source              = "../modules/pushgateway"
  name                = "${local.name}-pushgateway"
  dns_namespace_id    = module.mlflow.dns_namespace_id
  dns_namespace       = "${var.environment}.dropout.internal"
  scraper_cidr_blocks = coalesce(var.pushgateway_scraper_cidr_blocks, [module.network.vpc_cidr_block])
}

module "consumer" {
  source                    = "../modules/consumer"
  name                      = "${local.name}-consumer"
  platform                  = local.platform
  service_name              = module.consumer_task.service_name
  extra_security_group_ids  = [module.mlflow_task.client_security_group_id]
  image                     = local.images["consumer"]
  ecr_repository_arn        = module.ecr.repository_arns["consumer"]
  cpu                       = var.consumer_cpu
  memory                    = var.consumer_memory
  min_count                 = var.consumer_min_count
  max_count                 = var.consumer_max_count
  cpu_target_percent        = var.consumer_cpu_target_percent
  iterator_age_scale_out_ms = var.iterator_age_scale_out_ms
  streams                   = module.streams.streams
  application_name          = "${local.name}-${var.kcl_application_name}"
  mlflow                    = module.mlflow.clients["consumer"]
  model_name                = var.model_name
  model_alias               = var.model_alias
  log_level                 = var.log_level
  loop_uri                  = module.loop_store.uri
  loop_bucket_arn           = module.loop_store.bucket_arn
  capture_enabled           = var.capture_enabled
}

module "training" {
  source                   = "../modules/training"
  name                     = "${local.name}-training"
  platform                 = local.platform
  task                     = module.training_task
  extra_security_group_ids = [module.mlflow_task.client_security_group_id, module.pushgateway_task.client_security_group_id]
  image                    = local.images["training"]
  ecr_repository_arn       = module.ecr.repository_arns["training"]
  cpu                      = var.training_cpu
  memory                   = var.training_memory
  task_timeout_seconds     = var.training_timeout_seconds
  max_retries              = var.training_max_retries
  schedule_expression      = var.training_schedule_expression
  schedule_timezone        = var.training_schedule_timezone
  schedule_enabled         = var.training_schedule_enabled
  notification_emails      = var.notification_emails
  mlflow                   = module.mlflow.clients["trainer"]
  experiment_name          = var.experiment_name
  model_name               = var.model_name
  model_alias              = var.model_alias
  gate_tolerance           = var.gate_tolerance
  loop_bucket              = module.loop_store.bucket
  loop_bucket_arn          = module.loop_store.bucket_arn
  loop_uri                 = module.loop_store.uri
  uci_mirror_uri           = module.loop_store.uci_mirror_uri
  pushgateway_url          = module.pushgateway.url
}

# --- the tasks -------------------------------------------------------------------------------
# Each service's module says what its task runs (task, security group, service); these calls
# place it on the platform. One call per task, not a for_each: a task's inputs name another
# task's outputs (the MLflow and Pushgateway clients groups), which instances of one module call
# cannot do.
module "mlflow_task" {
  source         = "../modules/ecs_task"
  name           = "${local.name}-mlflow"
  platform       = local.platform
  security_group = module.mlflow.security_group
  service        = module.mlflow.service
  task           = module.mlflow.task
}

module "pushgateway_task" {
  source         = "../modules/ecs_task"
  name           = "${local.name}-pushgateway"
  platform       = local.platform
  security_group = module.pushgateway.security_group
  service        = module.pushgateway.service
  task           = module.pushgateway.task
}

module "consumer_task" {
  source         = "../modules/ecs_task"
  name           = "${local.name}-consumer"
  platform       = local.platform
  security_group = module.consumer.security_group
  service        = module.consumer.service
  task           = module.consumer.task
}

module "training_task" {
  source         = "../modules/ecs_task"
  name           = "${local.name}-training"
  platform       = local.platform
  security_group = module.training.security_group
  task           = module.training.task
}
