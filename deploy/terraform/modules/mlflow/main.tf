# MLflow tracking server and model registry on ECS: RDS PostgreSQL as the backend store (the
# server logs in with IAM database authentication, a fresh token per connection, so a rotation of
# the RDS-managed master secret never cuts it off), an encrypted, versioned, private S3 bucket as
# the artifact store (proxied by the server, so clients need no S3 rights), a private DNS name
# (Cloud Map) that the consumer and training tasks use, and MLflow's basic-auth app: the users'
# passwords are Secrets Manager secrets, their grants are made by a bootstrap container.
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region      = data.aws_region.current.name
  account     = data.aws_caller_identity.current.account_id
  port        = 5000
  db_name     = "mlflow"
  db_user     = "mlflow"
  dns_name    = "mlflow.${var.dns_namespace}"
  bucket_name = "${var.name}-artifacts-${local.account}"
  partition   = data.aws_partition.current.partition

  # MLflow basic-auth: the admin (bootstrap only), the trainer (writes the registry), the
  # consumer (reads it), and the Flask secret key of the auth app's CSRF protection.
  admin_username = "admin"
  auth_secrets   = toset(["admin-password", "flask-secret-key", "trainer-password", "consumer-password"])
  # The registry's clients, each with its own user and password secret (<client>-password).
  client_usernames = { trainer = var.trainer_username, consumer = var.consumer_username }
  tracking_uri     = "http://${local.dns_name}:${local.port}"
}

# --- registry credentials --------------------------------------------------------------------
# Terraform creates the secrets but never their values: scripts/aws/secrets.sh puts a random
# value into each one that has none (before the first deploy), so no password lands in the state
# and the plan role needs no secretsmanager:GetSecretValue.
resource "aws_secretsmanager_secret" "auth" {
  #checkov:skip=CKV2_AWS_57:These are MLflow basic-auth passwords, not database credentials: no rotation Lambda exists for them; rotate by putting a new value and restarting MLflow (the bootstrap sets the users' passwords at every start).
  for_each                = local.auth_secrets
  name                    = "${var.name}/${each.key}"
  description             = "MLflow registry (${var.name}): ${each.key}"
  kms_key_id              = var.platform.kms_key_arn
  recovery_window_in_days = var.force_destroy ? 0 : 30
  tags                    = var.platform.tags
}

# --- artifact bucket -------------------------------------------------------------------------
module "artifacts" {
  source                  = "../bucket"
  name                    = local.bucket_name
  kms_key_arn             = var.platform.kms_key_arn
  noncurrent_version_days = var.noncurrent_version_days
  force_destroy           = var.force_destroy
  tags                    = var.platform.tags
}

# --- database --------------------------------------------------------------------------------
resource "aws_security_group" "database" {
  name        = "${var.name}-database"
  description = "MLflow backend store: PostgreSQL from the MLflow server only"
  vpc_id      = var.platform.vpc_id

  ingress {
    description     = "PostgreSQL from the MLflow server"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = [var.server_security_group_id]
  }

  tags = var.platform.tags
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.platform.subnet_ids
  tags       = var.platform.tags
}

resource "aws_db_parameter_group" "this" {
  name   = "${var.name}-postgres16"
  family = "postgres16"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }

  tags = var.platform.tags
}

resource "aws_db_instance" "this" {
  #checkov:skip=CKV_AWS_118:Performance Insights and the exported PostgreSQL logs cover this small registry database; OS-level enhanced monitoring would add a role with an AWS managed policy for little gain.
  identifier     = var.name
  engine         = "postgres"
  engine_version = "16"
  instance_class = var.db_instance_class
  db_name        = local.db_name
  username       = local.db_user

  # RDS generates the password and keeps it (and rotates it) in Secrets Manager.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.platform.kms_key_arn

  allocated_storage     = var.db_allocated_storage_gb
  max_allocated_storage = var.db_allocated_storage_gb * 4
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.platform.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.database.id]
  parameter_group_name   = aws_db_parameter_group.this.name
  publicly_accessible    = false
  multi_az               = var.db_multi_az

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  copy_tags_to_snapshot               = true
  backup_retention_period             = var.db_backup_retention_days
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = !var.deletion_protection
  final_snapshot_identifier           = "${var.name}-final"
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  performance_insights_enabled    = true
  performance_insights_kms_key_id = var.platform.kms_key_arn

  tags = var.platform.tags
}

# --- server ----------------------------------------------------------------------------------
# The server reads and writes artifacts in its bucket and connects to its database; nothing else.
data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ListArtifacts"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [module.artifacts.arn]
  }
  statement {
    sid    = "ReadWriteArtifacts"
    effect = "Allow"
    actions = [
      "s3:DeleteObject",
      "s3:GetObject",
      "s3:PutObject",
    ]
    resources = ["${module.artifacts.arn}/*"]
  }
  statement {
    sid    = "BucketEncryptionKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.platform.kms_key_arn]
  }
  statement {
    # IAM database authentication: tokens for the one database user, on this instance only.
    sid       = "ConnectToTheDatabase"
    effect    = "Allow"
    actions   = ["rds-db:connect"]
    resources = ["arn:${local.partition}:rds-db:${local.region}:${local.account}:dbuser:${aws_db_instance.this.resource_id}/${local.db_user}"]
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.dns_namespace
  description = "Private names of the dropout services"
  vpc         = var.platform.vpc_id
  tags        = var.platform.tags
}

# What modules/ecs_task runs (live/main.tf calls it with these outputs and the platform). The
# server's security group is an output of its own: the database admits that group, and the task
# (its containers, secrets and policy) names the database, so the group must not wait for it.
output "security_group" {
  description = "The MLflow server tasks' security group (modules/ecs_task's security_group)."
  value = {
    name              = "${var.name}-server"
    description       = "MLflow server tasks"
    https_description = "HTTPS to S3, Secrets Manager, ECR and CloudWatch Logs"
    egress            = [{ description = "PostgreSQL inside the VPC", port = 5432, cidr_blocks = [var.platform.vpc_cidr_block] }]
  }
}

# Whoever can register a model version runs code in the consumers: the registry answers only
# the tasks that carry the clients group (consumer, training) and the operators' VPN/bastion
# CIDRs (var.operator_cidr_blocks), never the whole VPC.
output "service" {
  description = "The MLflow service and its endpoint (modules/ecs_task's service)."
  value = {
    desired_count = var.desired_count
    endpoint = {
      dns_name     = "mlflow"
      namespace_id = aws_service_discovery_private_dns_namespace.this.id
      port         = local.port
      cidr_blocks  = var.operator_cidr_blocks
      descriptions = {
        clients_group       = "Attached to tasks that may call the MLflow server (consumer, training)"
        clients_to_server   = "MLflow API"
        server_from_clients = "MLflow API from its clients (consumer, training)"
        server_from_cidrs   = "MLflow UI and API from the operators' VPN or bastion"
      }
    }
  }
}

output "task" {
  description = "The MLflow server task (modules/ecs_task's task)."
  value = {
    cpu                 = var.cpu
    memory              = var.memory
    ecr_repository_arns = [var.ecr_repository_arn]
    policy_name         = "artifact-store"
    policy_json         = data.aws_iam_policy_document.task.json
    volumes             = ["tmp"]
    containers = [
      {
        name         = "mlflow"
        image        = var.image
        user         = "10001:10001"
        portMappings = [{ containerPort = local.port, protocol = "tcp", name = "http" }]
        environment = [
          { name = "DB_HOST", value = aws_db_instance.this.address },
          { name = "DB_PORT", value = tostring(aws_db_instance.this.port) },
          { name = "DB_NAME", value = local.db_name },
          { name = "DB_USER", value = local.db_user },
          { name = "DB_SSLMODE", value = "require" },
          { name = "DB_IAM_AUTH", value = "true" },
          { name = "MLFLOW_AUTH_ADMIN_USERNAME", value = local.admin_username },
          { name = "MLFLOW_ARTIFACTS_DESTINATION", value = "s3://${module.artifacts.bucket}/artifacts" },
          { name = "MLFLOW_SERVER_ALLOWED_HOSTS", value = "${local.dns_name},${local.dns_name}:${local.port},localhost:*,127.0.0.1:*" },
          { name = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", value = "false" },
          { name = "MLFLOW_WORKERS", value = tostring(var.workers) },
          { name = "AWS_REGION", value = local.region },
        ]
        # The server logs in with IAM tokens (DB_IAM_AUTH); the RDS-managed master password (a
        # JSON document) is read at task start only for the one-time rds_iam grant.
        secrets = [
          { name = "DB_MASTER_PASSWORD", valueFrom = "${aws_db_instance.this.master_user_secret[0].secret_arn}:password::" },
          { name = "MLFLOW_AUTH_ADMIN_PASSWORD", valueFrom = aws_secretsmanager_secret.auth["admin-password"].arn },
          { name = "MLFLOW_FLASK_SERVER_SECRET_KEY", valueFrom = aws_secretsmanager_secret.auth["flask-secret-key"].arn },
        ]
        mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
        healthCheck = {
          command     = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${local.port}/health', timeout=4).status == 200 else 1)"]
          interval    = 15
          timeout     = 5
          retries     = 5
          startPeriod = 90
        }
        stopTimeout     = 30
        linuxParameters = { initProcessEnabled = true }
      },
      {
        # Users and grants (docker/mlflow_auth_bootstrap.py), idempotent, once the server is
        # healthy; it exits and the task keeps running (not essential).
        name       = "auth-bootstrap"
        image      = var.image
        essential  = false
        user       = "10001:10001"
        entryPoint = ["python", "/opt/dropout/mlflow_auth_bootstrap.py"]
        dependsOn  = [{ containerName = "mlflow", condition = "HEALTHY" }]
        environment = [
          { name = "MLFLOW_TRACKING_URI", value = "http://127.0.0.1:${local.port}" },
          { name = "MLFLOW_AUTH_ADMIN_USERNAME", value = local.admin_username },
          { name = "MLFLOW_TRAINER_USERNAME", value = var.trainer_username },
          { name = "MLFLOW_CONSUMER_USERNAME", value = var.consumer_username },
          { name = "MLFLOW_EXPERIMENT_NAME", value = var.experiment_name },
          { name = "MODEL_NAME", value = var.model_name },
        ]
        secrets = [
          { name = "MLFLOW_AUTH_ADMIN_PASSWORD", valueFrom = aws_secretsmanager_secret.auth["admin-password"].arn },
          { name = "MLFLOW_TRAINER_PASSWORD", valueFrom = aws_secretsmanager_secret.auth["trainer-password"].arn },
          { name = "MLFLOW_CONSUMER_PASSWORD", valueFrom = aws_secretsmanager_secret.auth["consumer-password"].arn },
        ]
        mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      }
    ]
  }
}
