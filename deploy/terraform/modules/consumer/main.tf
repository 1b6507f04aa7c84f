# The consumer service: `python -m consumer run` (KCL MultiLangDaemon + one Python record
# processor per shard lease): what its ECS task runs (the task, security group and service that
# live/main.tf's call of modules/ecs_task takes), its task role's permissions, and autoscaling
# on CPU and on the input stream's iterator age. Every scored batch is captured to
# the learning loop's bucket (captures/<model>/..., written before the batch is checkpointed).
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  metrics   = 9108
  table_arn = "arn:${local.partition}:dynamodb:${local.region}:${local.account}:table"

  # Every variable here is one consumer/config.py reads (tests/deploy checks it). The endpoint
  # variables are empty: boto3 and the KCL use the regional endpoints and the task role.
  environment = {
    AWS_REGION            = local.region
    KINESIS_ENDPOINT_URL  = ""
    DYNAMODB_ENDPOINT_URL = ""
    INPUT_STREAM          = var.streams.input.name
    PREDICTIONS_STREAM    = var.streams.predictions.name
    DEAD_LETTER_STREAM    = var.streams.dead_letter.name
    KCL_APPLICATION_NAME  = var.application_name
    KCL_INITIAL_POSITION  = var.initial_position
    MLFLOW_TRACKING_URI   = var.mlflow.tracking_uri
    # Read-only registry identity; its password comes from Secrets Manager (secrets below).
    MLFLOW_TRACKING_USERNAME    = var.mlflow.username
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

# --- the task ------------------------------------------------------------------------------
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
    resources = [var.streams.input.arn]
  }
  statement {
    sid    = "WriteOutputStreams"
    effect = "Allow"
    actions = [
      "kinesis:DescribeStreamSummary",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
    ]
    resources = [var.streams.predictions.arn, var.streams.dead_letter.arn]
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
    resources = [var.platform.kms_key_arn]
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

# What modules/ecs_task runs (live/main.tf calls it with these outputs and the platform).
output "security_group" {
  description = "The consumer tasks' security group (modules/ecs_task's security_group)."
  value = {
    name              = var.name
    description       = "Dropout consumer tasks: metrics scraped from the VPC; HTTPS to AWS APIs (MLflow: clients group)"
    https_description = "HTTPS to Kinesis, DynamoDB, CloudWatch and ECR"
    ingress           = [{ description = "Prometheus scrapes /metrics from inside the VPC", port = local.metrics, cidr_blocks = [var.platform.vpc_cidr_block] }]
  }
}

# The autoscaling policies below own the task count after the first apply.
output "service" {
  description = "The consumer service (modules/ecs_task's service)."
  value = {
    desired_count            = var.min_count
    autoscaled               = true
    extra_security_group_ids = var.extra_security_group_ids
  }
}

output "task" {
  description = "The consumer task (modules/ecs_task's task)."
  value = {
    cpu                 = var.cpu
    memory              = var.memory
    ecr_repository_arns = [var.ecr_repository_arn]
    policy_name         = "kcl-consumer"
    policy_json         = data.aws_iam_policy_document.task.json
    # Read-only root file system: the image declares these two paths as its writable volumes.
    volumes = ["state", "tmp"]
    containers = [
      {
        name         = "consumer"
        image        = var.image
        user         = "10001:10001"
        environment  = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
        secrets      = [{ name = "MLFLOW_TRACKING_PASSWORD", valueFrom = var.mlflow.password_secret_arn }]
        portMappings = [{ containerPort = local.metrics, protocol = "tcp", name = "metrics" }]
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
      }
    ]
  }
}

# --- autoscaling -----------------------------------------------------------------------------
resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.platform.cluster_name}/${var.service_name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_count
  max_capacity       = var.max_count
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
  dimensions          = { StreamName = var.streams.input.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 3
  threshold           = var.iterator_age_scale_out_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.iterator_age.arn]
  tags                = var.platform.tags
}
