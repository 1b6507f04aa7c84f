# The consumer service: `python -m consumer run` (KCL MultiLangDaemon + one Python record
# processor per shard lease) as an ECS service, its roles, log group, security group and
# autoscaling on CPU and on the input stream's iterator age. Every scored batch is captured to
# the learning loop's bucket (captures/<model>/..., written before the batch is checkpointed).
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  account     = data.aws_caller_identity.current.account_id
  metrics     = 9108
  table_arn   = "arn:${local.partition}:dynamodb:${local.region}:${local.account}:table"
  ecs_service = "service/${var.cluster_name}/${var.name}"

  # Every variable here is one consumer/config.py reads (tests/deploy checks it). The endpoint
  # variables are empty: boto3 and the KCL use the regional endpoints and the task role.
  environment = {
    AWS_REGION            = local.region
    KINESIS_ENDPOINT_URL  = ""
    DYNAMODB_ENDPOINT_URL = ""
    INPUT_STREAM          = var.input_stream_name
    PREDICTIONS_STREAM    = var.predictions_stream_name
    DEAD_LETTER_STREAM    = var.dead_letter_stream_name
    KCL_APPLICATION_NAME  = var.application_name
    KCL_INITIAL_POSITION  = var.initial_position
    MLFLOW_TRACKING_URI   = var.mlflow_tracking_uri
    # Read-only registry identity; its password comes from Secrets Manager (secrets below).
    MLFLOW_TRACKING_USERNAME    = var.mlflow_username
    MODEL_NAME                  = var.model_name
    MODEL_ALIAS                 = var.model_alias
    MODEL_POLL_INTERVAL_SECONDS = tostring(var.model_poll_interval_seconds)
    METRICS_HOST                = "0.0.0.0"
    METRICS_PORT                = tostring(local.metrics)
    LOG_LEVEL                   = var.log_level
    # The learning loop's store; the endpoint is empty (the code's default is the embedded
    # stack's moto): the regional S3 endpoint and the task role.
    LOOP_URI             = var.loop_uri
    LOOP_S3_ENDPOINT_URL = ""
    CAPTURE_ENABLED      = tostring(var.capture_enabled)
  }
  # The consumer writes capture objects of its own model only (common/capture_format.py).
  capture_objects = "${var.loop_bucket_arn}/captures/${var.model_name}/*"
}

resource "aws_cloudwatch_log_group" "this" {
  name              = "/dropout/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# --- roles -----------------------------------------------------------------------------------
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

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# The ECS agent pulls the image, reads the registry password and ships the output to the logs.
data "aws_iam_policy_document" "execution" {
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
    resources = [var.ecr_repository_arn]
  }
  statement {
    sid       = "DecryptTheImageAndSecret"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "ReadTheRegistryPassword"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.mlflow_password_secret_arn]
  }
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
  name   = "pull-image-read-secret-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# What the KCL and the record processors do: read the input stream, write the two output
# streams, keep leases, checkpoints and worker metrics in the application's own DynamoDB tables,
# publish KCL metrics to CloudWatch under the application's namespace, and capture each batch.
data "aws_iam_policy_document" "task" {
  statement {
    sid    = "ReadInputStream"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.input_stream_arn]
  }
  statement {
    sid    = "WriteOutputStreams"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStreamSummary",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
    ]
    resources = [var.predictions_stream_arn, var.dead_letter_stream_arn]
  }
  statement {
    # The project key: Decrypt and GenerateDataKey for the streams, GenerateDataKey for the
    # capture objects (SSE-KMS).
    sid    = "ProjectKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.kms_key_arn]
  }
  statement {
    # Capture: one PutObject per batch per shard under captures/<model>/, nothing else in the
    # bucket (no read, no list, no delete; a replayed batch overwrites its own key).
    sid       = "WriteCaptures"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = [local.capture_objects]
  }
  statement {
    sid    = "KclTables"
    effect = "Allow"
    actions = [
      "dynamodb:ConditionCheckItem",
      "dynamodb:CreateTable",
      "dynamodb:DeleteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
      "dynamodb:UpdateTable",
    ]
    # KCL 3 names its tables after the application: the lease table, the coordinator state
    # and the worker metrics.
    resources = [
      "${local.table_arn}/${var.application_name}",
      "${local.table_arn}/${var.application_name}-CoordinatorState",
      "${local.table_arn}/${var.application_name}-WorkerMetricStats",
    ]
  }
  statement {
    sid       = "KclLeaseTableIndex"
    effect    = "Allow"
    actions   = ["dynamodb:Query"]
    resources = ["${local.table_arn}/${var.application_name}/index/*"]
  }
  statement {
    sid     = "KclMetrics"
    effect  = "Allow"
    actions = ["cloudwatch:PutMetricData"]
    # Wildcard resource: cloudwatch:PutMetricData supports no resource-level permissions; the
    # condition limits it to the KCL application's own namespace.
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.application_name]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "kcl-consumer"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# --- network ---------------------------------------------------------------------------------
resource "aws_security_group" "this" {
  name        = var.name
  description = "Dropout consumer tasks: metrics scraped from the VPC; HTTPS to AWS APIs (MLflow: clients group)"
  vpc_id      = var.vpc_id

  ingress {
    description = "Prometheus scrapes /metrics from inside the VPC"
    from_port   = local.metrics
    to_port     = local.metrics
    protocol    = "tcp"
    cidr_blocks = [var.vpc_cidr_block]
  }

  egress {
    description = "HTTPS to Kinesis, DynamoDB, CloudWatch and ECR"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = var.tags
}

# --- task and service ------------------------------------------------------------------------
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

  # Read-only root file system: the image declares these two paths as its writable volumes.
  volume {
    name = "state"
  }
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "consumer"
      image                  = var.image
      essential              = true
      readonlyRootFilesystem = true
      user                   = "10001:10001"
      environment            = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
      secrets                = [{ name = "MLFLOW_TRACKING_PASSWORD", valueFrom = var.mlflow_password_secret_arn }]
      portMappings           = [{ containerPort = local.metrics, protocol = "tcp", name = "metrics" }]
      mountPoints = [
        { sourceVolume = "state", containerPath = "/var/lib/consumer", readOnly = false },
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]
      healthCheck = {
        command     = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${local.metrics}/healthz', timeout=4).status == 200 else 1)"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 120
      }
      # SIGTERM reaches the supervisor (under the init process), which forwards it to the KCL
      # daemon; 120 s (the Fargate maximum) lets every shard finish its batch and checkpoint.
      stopTimeout     = 120
      linuxParameters = { initProcessEnabled = true }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "consumer"
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
  desired_count                      = var.min_count
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
    security_groups  = concat([aws_security_group.this.id], var.extra_security_group_ids)
    assign_public_ip = false
  }

  # The autoscaling policies own the task count after the first apply.
  lifecycle {
    ignore_changes = [desired_count]
  }

  tags = var.tags
}

# --- autoscaling -----------------------------------------------------------------------------
resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = local.ecs_service
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
  depends_on         = [aws_ecs_service.this]
}

# CPU: scoring is CPU-bound; target tracking scales out and back in.
resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_in_cooldown  = 300
    scale_out_cooldown = 60
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

# Iterator age: the oldest unread record of the input stream (GetRecords.IteratorAgeMilliseconds).
# A growing backlog adds a worker per step; scale-in is left to the CPU policy, so the two
# policies never fight. More workers than shards do not help: max_count caps it.
resource "aws_appautoscaling_policy" "iterator_age" {
  name               = "${var.name}-iterator-age"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 120
    metric_aggregation_type = "Maximum"

    step_adjustment {
      metric_interval_lower_bound = 0
      metric_interval_upper_bound = var.iterator_age_scale_out_ms * 4
      scaling_adjustment          = 1
    }
    step_adjustment {
      metric_interval_lower_bound = var.iterator_age_scale_out_ms * 4
      scaling_adjustment          = 2
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "iterator_age_high" {
  alarm_name          = "${var.name}-iterator-age-high"
  alarm_description   = "Input stream backlog: add consumer workers"
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.input_stream_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.iterator_age_scale_out_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.iterator_age.arn]
  tags                = var.tags
}
