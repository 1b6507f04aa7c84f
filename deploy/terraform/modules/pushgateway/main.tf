# The Prometheus Pushgateway (the official image) as a small ECS service: the learning loop's
# monitor, a batch job, pushes its figures here (job dropout-loop-monitor, grouping key model)
# and the deployment's Prometheus scrapes them with honor_labels: true, so the pushed job label
# stays (deploy/README.md: Amazon Managed Service for Prometheus or a self-run Prometheus).
#
# Reachable at pushgateway.<namespace>:9091 (Cloud Map) by the tasks that carry the clients
# group (training) and by the scrapers' CIDRs. The figures live in memory: a replaced task
# starts empty, and the next monitor run (every deploy starts one, then the schedule) pushes
# them again; the DropoutLoopMonitorStale alert says when pushes stop.
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  port      = 9091
  container = "pushgateway"
  dns_name  = "pushgateway.${var.dns_namespace}"
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/dropout/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# The ECS agent only ships the output to the log group: the image is public, there is no secret.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "execution" {
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

resource "aws_iam_role_policy" "execution" {
  name   = "write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# The Pushgateway calls no AWS API: its task role has no permission.
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# --- network: the clients group pushes, the scrapers' CIDRs read -----------------------------
# The Pushgateway has no authentication of its own, so only these can connect. Rules are
# separate resources because the two groups refer to each other.
resource "aws_security_group" "clients" {
  #checkov:skip=CKV2_AWS_5:Attached to the training task through modules/training's extra_security_group_ids (and the state machine's RunTask parameters), which static analysis cannot follow.
  name        = "${var.name}-clients"
  description = "Attached to tasks that may push to the Pushgateway (training)"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "clients_to_server" {
  security_group_id            = aws_security_group.clients.id
  description                  = "Pushgateway API"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = aws_security_group.server.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "server_from_clients" {
  security_group_id            = aws_security_group.server.id
  description                  = "Pushes from its clients (training)"
  ip_protocol                  = "tcp"
  from_port                    = local.port
  to_port                      = local.port
  referenced_security_group_id = aws_security_group.clients.id
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "server_from_scrapers" {
  for_each          = toset(var.scraper_cidr_blocks)
  security_group_id = aws_security_group.server.id
  description       = "Prometheus scrapes /metrics"
  ip_protocol       = "tcp"
  from_port         = local.port
  to_port           = local.port
  cidr_ipv4         = each.value
  tags              = var.tags
}

resource "aws_security_group" "server" {
  name        = "${var.name}-server"
  description = "Pushgateway tasks: pushes from the clients group, scrapes from the scrapers"
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS: the image pull and CloudWatch Logs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = var.tags
}

# --- service ---------------------------------------------------------------------------------
resource "aws_service_discovery_service" "this" {
  name = "pushgateway"

  dns_config {
    namespace_id   = var.dns_namespace_id
    routing_policy = "MULTIVALUE"
    dns_records {
      type = "A"
      ttl  = 10
    }
  }

  health_check_custom_config {
    failure_threshold = 1
  }

  tags = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = [var.requires_compatibilities]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name                   = local.container
      image                  = var.image
      essential              = true
      readonlyRootFilesystem = true
      # The image's own user (nobody).
      user = "65534:65534"
      # In memory only (no persistence file: the root file system is read-only).
      command      = ["--web.listen-address=:${local.port}", "--persistence.file=", "--log.format=json"]
      portMappings = [{ containerPort = local.port, protocol = "tcp", name = "http" }]
      healthCheck = {
        # The official image ships busybox's wget.
        command     = ["CMD", "wget", "--quiet", "--output-document=/dev/null", "http://127.0.0.1:${local.port}/-/ready"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 15
      }
      stopTimeout = 10
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "pushgateway"
        }
      }
    }
  ])

  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                               = var.name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = 1
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"

  capacity_provider_strategy {
    capacity_provider = var.capacity_provider
    weight            = 1
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.server.id]
    assign_public_ip = false
  }

  service_registries {
    registry_arn = aws_service_discovery_service.this.arn
  }

  tags = var.tags
}
