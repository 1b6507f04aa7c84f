# One ECS task of the stack (consumer, training, MLflow, Pushgateway) and, for a long-running
# one, the service that keeps it running: its log group, its execution and task roles, its
# security group, its task definition; optionally a private endpoint (Cloud Map name, a clients
# group). Every task runs in the private subnets (awsvpc), on Linux/X86_64 (the images are built
# for linux/amd64), with a read-only root file system, and logs to its own KMS-encrypted group.
data "aws_region" "current" {}

locals {
  # The Secrets Manager secrets the containers' `secrets` name (a valueFrom may add a JSON key,
  # ARN:key::): the execution role reads these and no others.
  secret_arns = distinct(flatten([
    for container in var.task.containers : [
      for secret in lookup(container, "secrets", []) : regex("^arn:[^:]+:secretsmanager:[^:]+:[^:]+:secret:[^:]+", secret.valueFrom)
    ]
  ]))
  # Counts must be known at plan; in a new environment the secrets' ARNs and the endpoint's
  # namespace are not yet. So these look only at what is known (how many secrets each container
  # names, the endpoint's port): try() or a comparison of an object holding an unknown value is
  # unknown, and a new environment's first plan failed so.
  pulls_images  = length(var.task.ecr_repository_arns) > 0
  reads_secrets = anytrue([for container in var.task.containers : length(lookup(container, "secrets", [])) > 0])
  autoscaled    = var.service != null && try(var.service.autoscaled, false)
  endpoint      = try(var.service.endpoint.port, null) != null
  log_options = {
    awslogs-group  = aws_cloudwatch_log_group.this.name
    awslogs-region = data.aws_region.current.name
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/dropout/${var.name}"
  retention_in_days = var.platform.log_retention_days
  kms_key_id        = var.platform.kms_key_arn
  tags              = var.platform.tags
}

# --- roles -----------------------------------------------------------------------------------
# The ECS agent (execution role) pulls the images from ECR, reads the task's secrets, and ships
# the output to the log group; a task from a public image with no secret only writes its logs.
data "aws_iam_policy_document" "pull_images" {
  count = local.pulls_images ? 1 : 0
  statement {
    sid     = "EcrLogin"
    effect  = "Allow"
    actions = ["ecr:GetAuthorizationToken"]
    # Wildcard resource: ecr:GetAuthorizationToken supports no resource-level permissions.
    resources = ["*"]
  }
  statement {
    sid    = "PullTheImage"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = var.task.ecr_repository_arns
  }
}

data "aws_iam_policy_document" "read_secrets" {
  count = local.reads_secrets ? 1 : 0
  statement {
    sid       = "ReadTheTaskSecrets"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = local.secret_arns
  }
}

# The images (ECR) and the secrets are encrypted with the project key.
data "aws_iam_policy_document" "decrypt" {
  count = local.pulls_images || local.reads_secrets ? 1 : 0
  statement {
    sid       = "DecryptTheImageAndSecrets"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.platform.kms_key_arn]
  }
}

data "aws_iam_policy_document" "execution" {
  source_policy_documents = concat(
    data.aws_iam_policy_document.pull_images[*].json,
    data.aws_iam_policy_document.read_secrets[*].json,
    data.aws_iam_policy_document.decrypt[*].json,
  )
  statement {
    sid    = "WriteLogs"
    effect = "Allow"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }
}

# Both roles trust ECS tasks of this account only; the task role (what the containers' code may
# do) has the caller's policy, or none.
module "role" {
  source = "../service_role"
  for_each = {
    execution = {
      policy_name = join("-", compact([local.pulls_images ? "pull-image" : "", local.reads_secrets ? "read-secret" : "", "write-logs"]))
      policy_json = data.aws_iam_policy_document.execution.json
    }
    task = { policy_name = var.task.policy_name, policy_json = var.task.policy_json }
  }
  name        = "${var.name}-${each.key}"
  service     = "ecs-tasks.amazonaws.com"
  policy_name = each.value.policy_name
  policy_json = each.value.policy_json
  tags        = var.platform.tags
}

# --- network ---------------------------------------------------------------------------------
# Every task needs HTTPS out (image pull, logs, AWS APIs); the caller names the group and adds
# its own rules. Groups that other groups refer to get separate rule resources (endpoint below).
resource "aws_security_group" "this" {
  #checkov:skip=CKV2_AWS_5:A task without a service (training) gets this group at run time, from the state machine's RunTask parameters (NetworkConfiguration), which static analysis cannot follow; a service attaches it below.
  name        = var.security_group.name
  description = var.security_group.description
  vpc_id      = var.platform.vpc_id

  egress {
    description = var.security_group.https_description
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  dynamic "egress" {
    for_each = var.security_group.egress
    content {
      description = egress.value.description
      from_port   = egress.value.port
      to_port     = egress.value.port
      protocol    = "tcp"
      cidr_blocks = egress.value.cidr_blocks
    }
  }

  dynamic "ingress" {
    for_each = var.security_group.ingress
    content {
      description = ingress.value.description
      from_port   = ingress.value.port
      to_port     = ingress.value.port
      protocol    = "tcp"
      cidr_blocks = ingress.value.cidr_blocks
    }
  }

  tags = var.platform.tags
}

# --- task definition -------------------------------------------------------------------------
resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = [var.platform.requires_compatibilities]
  network_mode             = "awsvpc"
  cpu                      = var.task.cpu
  memory                   = var.task.memory
  execution_role_arn       = module.role["execution"].arn
  task_role_arn            = module.role["task"].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Read-only root file system: each path a container writes to is a volume of its own.
  dynamic "volume" {
    for_each = toset(var.task.volumes)
    content {
      name = volume.value
    }
  }

  # Each container (essential unless it says otherwise) gets a read-only root file system and
  # logs to the task's group under its own name.
  container_definitions = jsonencode([
    for container in var.task.containers : merge(
      { essential = true },
      container,
      {
        readonlyRootFilesystem = true
        logConfiguration = {
          logDriver = "awslogs"
          options   = merge(local.log_options, { awslogs-stream-prefix = container.name })
        }
      },
    )
  ])

  tags = var.platform.tags
}

# --- service ---------------------------------------------------------------------------------
resource "aws_ecs_service" "this" {
  count                              = var.service != null && !local.autoscaled ? 1 : 0
  name                               = var.name
  cluster                            = var.platform.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.service.desired_count
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  capacity_provider_strategy {
    capacity_provider = var.platform.capacity_provider
    weight            = 1
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.platform.subnet_ids
    security_groups  = concat([aws_security_group.this.id], var.service.extra_security_group_ids)
    assign_public_ip = false
  }

  dynamic "service_registries" {
    for_each = aws_service_discovery_service.this[*].arn
    content {
      registry_arn = service_registries.value
    }
  }

  tags = var.platform.tags
}

# The same service when an autoscaling policy (the caller's) owns the task count after the
# first apply: Terraform cannot make lifecycle.ignore_changes conditional, hence a second
# resource, created instead of the first.
resource "aws_ecs_service" "autoscaled" {
  count                              = local.autoscaled ? 1 : 0
  name                               = var.name
  cluster                            = var.platform.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.service.desired_count
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  capacity_provider_strategy {
    capacity_provider = var.platform.capacity_provider
    weight            = 1
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.platform.subnet_ids
    security_groups  = concat([aws_security_group.this.id], var.service.extra_security_group_ids)
    assign_public_ip = false
  }

  dynamic "service_registries" {
    for_each = aws_service_discovery_service.this[*].arn
    content {
      registry_arn = service_registries.value
    }
  }

  lifecycle {
    ignore_changes = [desired_count]
  }

  tags = var.platform.tags
}

# --- private endpoint: NAME.<namespace>:PORT for the clients group and some CIDRs --------------
# Whoever carries the clients group reaches the service's port; so do the endpoint's CIDRs
# (operators, scrapers); nothing else in the VPC does. Rules are separate resources because the
# two groups refer to each other.
resource "aws_service_discovery_service" "this" {
  count = local.endpoint ? 1 : 0
  name  = var.service.endpoint.dns_name

  dns_config {
    namespace_id   = var.service.endpoint.namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = var.platform.tags
}

resource "aws_security_group" "clients" {
  #checkov:skip=CKV2_AWS_5:Attached to the client tasks through their modules' extra_security_group_ids (and the state machine's RunTask parameters), which static analysis cannot follow.
  count       = local.endpoint ? 1 : 0
  name        = "${var.name}-clients"
  description = var.service.endpoint.descriptions.clients_group
  vpc_id      = var.platform.vpc_id
  tags        = var.platform.tags
}

resource "aws_vpc_security_group_egress_rule" "clients_to_server" {
  count                        = local.endpoint ? 1 : 0
  security_group_id            = aws_security_group.clients[0].id
  description                  = var.service.endpoint.descriptions.clients_to_server
  ip_protocol                  = "tcp"
  from_port                    = var.service.endpoint.port
  to_port                      = var.service.endpoint.port
  referenced_security_group_id = aws_security_group.this.id
  tags                         = var.platform.tags
}

resource "aws_vpc_security_group_ingress_rule" "server_from_clients" {
  count                        = local.endpoint ? 1 : 0
  security_group_id            = aws_security_group.this.id
  description                  = var.service.endpoint.descriptions.server_from_clients
  ip_protocol                  = "tcp"
  from_port                    = var.service.endpoint.port
  to_port                      = var.service.endpoint.port
  referenced_security_group_id = aws_security_group.clients[0].id
  tags                         = var.platform.tags
}

resource "aws_vpc_security_group_ingress_rule" "server_from_cidrs" {
  for_each          = toset(local.endpoint ? var.service.endpoint.cidr_blocks : [])
  security_group_id = aws_security_group.this.id
  description       = var.service.endpoint.descriptions.server_from_cidrs
  ip_protocol       = "tcp"
  from_port         = var.service.endpoint.port
  to_port           = var.service.endpoint.port
  cidr_ipv4         = each.value
  tags              = var.platform.tags
}
