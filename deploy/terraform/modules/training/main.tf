# Scheduled retraining, which closes the learning loop: an EventBridge Scheduler schedule starts
# a Step Functions state machine (modules/retraining_workflow) that runs the training task on
# ECS once per step (monitor -> dataset build -> train, which gates), reads each step's run
# summary from the loop's bucket and publishes the outcome, with the champion's realized,
# estimated and held-out figures and the gate's decision, to an SNS topic.
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  partition = data.aws_partition.current.partition
  region    = data.aws_region.current.name
  account   = data.aws_caller_identity.current.account_id
  container = "training"
  # Any revision of the family: the state machine runs the latest active one.
  task_definition_family_arn = "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${var.task.family}:*"
  cluster_tasks_arn          = "arn:${local.partition}:ecs:${local.region}:${local.account}:task/${var.platform.cluster_name}/*"
  ecs_events_rule_arn        = "arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForECSTaskRule"
  # The state machine's own ARN (its name is var.name): the scheduler's role may start it.
  state_machine_arn = "arn:${local.partition}:states:${local.region}:${local.account}:stateMachine:${var.name}"

  # The loop's prefixes (common/capture_format.py) and the run summaries' folder.
  captures             = "${var.loop_bucket_arn}/captures/*"
  outcomes             = "${var.loop_bucket_arn}/outcomes/*"
  datasets             = "${var.loop_bucket_arn}/datasets/*"
  institution_datasets = "${var.loop_bucket_arn}/datasets/institution-*"
  run_summaries        = "${var.loop_bucket_arn}/runs/*"

  # Every variable here is one training/config.py (or common/settings.py) reads (tests/deploy
  # checks it). The UCI data comes from its checked copy in the loop's bucket, not the UCI site.
  environment = {
    MLFLOW_TRACKING_URI = var.mlflow.tracking_uri
    # The registry's writer identity; its password comes from Secrets Manager (secrets below).
    MLFLOW_TRACKING_USERNAME = var.mlflow.username
    MLFLOW_EXPERIMENT_NAME   = var.experiment_name
    MODEL_NAME               = var.model_name
    MODEL_ALIAS              = var.model_alias
    GATE_TOLERANCE           = tostring(var.gate_tolerance)
    # One model-search worker per vCPU of the task.
    N_JOBS     = tostring(max(1, floor(var.cpu / 1024)))
    AWS_REGION = local.region
    # The learning loop: its store (the endpoint is empty: the code's default is the embedded
    # stack's moto), the UCI mirror, the Pushgateway the monitor pushes to, and where a task
    # started outside the state machine leaves its summaries (the state machine overrides it
    # with runs/<execution name>/).
    LOOP_URI             = var.loop_uri
    LOOP_S3_ENDPOINT_URL = ""
    UCI_MIRROR_URI       = var.uci_mirror_uri
    RUN_SUMMARY_URI      = "${var.loop_uri}runs/adhoc/"
    PUSHGATEWAY_URL      = var.pushgateway_url
  }
}

# --- the training task -----------------------------------------------------------------------
# The training job talks to the MLflow server (artifacts go through it), the Pushgateway, and
# the loop's bucket: it reads captures, outcomes and datasets (the UCI mirror among them), and
# writes the datasets it builds and its run summaries. It cannot touch the UCI mirror, write a
# capture or an outcome, delete anything, or read another bucket.
data "aws_iam_policy_document" "task" {
  statement {
    sid       = "ListTheLoopsInputs"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.loop_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["captures/*", "outcomes/*", "datasets/*"]
    }
  }
  statement {
    sid       = "ReadCapturesOutcomesDatasets"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.captures, local.outcomes, local.datasets]
  }
  statement {
    sid       = "WriteInstitutionDatasetsAndRunSummaries"
    effect    = "Allow"
    actions   = ["s3:PutObject"]
    resources = [local.institution_datasets, local.run_summaries]
  }
  statement {
    sid    = "LoopEncryptionKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.platform.kms_key_arn]
  }
}

# What modules/ecs_task runs (live/main.tf calls it with these outputs and the platform). No
# service: the state machine runs the task, with this group (RunTask parameters).
output "security_group" {
  description = "The training tasks' security group (modules/ecs_task's security_group)."
  value = {
    name              = var.name
    description       = "Training tasks: HTTPS out (dataset download, AWS APIs); MLflow via the clients group"
    https_description = "HTTPS: the UCI dataset download, ECR and CloudWatch Logs"
  }
}

output "task" {
  description = "The training task (modules/ecs_task's task)."
  value = {
    cpu                 = var.cpu
    memory              = var.memory
    ecr_repository_arns = [var.ecr_repository_arn]
    policy_name         = "learning-loop-store"
    policy_json         = data.aws_iam_policy_document.task.json
    volumes             = ["work", "tmp"]
    containers = [
      {
        name        = local.container
        image       = var.image
        user        = "10001:10001"
        command     = var.command
        environment = [for key in sort(keys(local.environment)) : { name = key, value = local.environment[key] }]
        secrets     = [{ name = "MLFLOW_TRACKING_PASSWORD", valueFrom = var.mlflow.password_secret_arn }]
        mountPoints = [
          { sourceVolume = "work", containerPath = "/var/lib/training", readOnly = false },
          { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
        ]
        stopTimeout     = 60
        linuxParameters = { initProcessEnabled = true }
      }
    ]
  }
}

# --- outcome notifications -------------------------------------------------------------------
resource "aws_sns_topic" "outcome" {
  name              = "${var.name}-outcome"
  kms_master_key_id = var.platform.kms_key_arn
  tags              = var.platform.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.notification_emails)
  topic_arn = aws_sns_topic.outcome.arn
  protocol  = "email"
  endpoint  = each.value
}

# --- state machine ---------------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "state_machine" {
  # /aws/vendedlogs/ keeps the log delivery's resource policy small (AWS recommendation).
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.platform.log_retention_days
  kms_key_id        = var.platform.kms_key_arn
  tags              = var.platform.tags
}

data "aws_iam_policy_document" "state_machine" {
  statement {
    sid       = "RunTheTrainingTask"
    effect    = "Allow"
    actions   = ["ecs:RunTask"]
    resources = [local.task_definition_family_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.task.placement.cluster_arn]
    }
  }
  statement {
    sid    = "WatchAndStopItsTasks"
    effect = "Allow"
    actions = [
      "ecs:DescribeTasks",
      "ecs:StopTask",
    ]
    resources = [local.cluster_tasks_arn]
  }
  statement {
    # runTask.sync learns that the task stopped through this EventBridge rule, which Step
    # Functions manages in the account.
    sid    = "SyncRule"
    effect = "Allow"
    actions = [
      "events:DescribeRule",
      "events:PutRule",
      "events:PutTargets",
    ]
    resources = [local.ecs_events_rule_arn]
  }
  statement {
    sid       = "PassTheTaskRoles"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [var.task.execution_role_arn, var.task.task_role_arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "PublishTheOutcome"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.outcome.arn]
  }
  statement {
    # Each step's summary (aws-sdk:s3:getObject): runs/<execution>/<step>.json, nothing else.
    sid       = "ReadRunSummaries"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = [local.run_summaries]
  }
  statement {
    # The project key: the topic (GenerateDataKey, Decrypt) and the run summaries (Decrypt).
    sid    = "ProjectKey"
    effect = "Allow"
    actions = [
      "kms:Decrypt",
      "kms:GenerateDataKey",
    ]
    resources = [var.platform.kms_key_arn]
  }
  statement {
    sid    = "LogDelivery"
    effect = "Allow"
    actions = [
      "logs:CreateLogDelivery",
      "logs:DeleteLogDelivery",
      "logs:DescribeLogGroups",
      "logs:DescribeResourcePolicies",
      "logs:GetLogDelivery",
      "logs:ListLogDeliveries",
      "logs:PutResourcePolicy",
      "logs:UpdateLogDelivery",
    ]
    # Wildcard resource: CloudWatch Logs vended log delivery actions support no resource-level
    # permissions (AWS documents "*" for Step Functions logging).
    resources = ["*"]
  }
  statement {
    sid    = "Tracing"
    effect = "Allow"
    actions = [
      "xray:GetSamplingRules",
      "xray:GetSamplingTargets",
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ]
    # Wildcard resource: these X-Ray actions support no resource-level permissions.
    resources = ["*"]
  }
}

module "workflow" {
  source                = "../retraining_workflow"
  name                  = var.name
  partition             = local.partition
  cluster_arn           = var.task.placement.cluster_arn
  task_definition       = var.task.family
  container_name        = local.container
  capacity_provider     = var.task.placement.capacity_provider
  subnet_ids            = var.task.placement.subnet_ids
  security_group_ids    = concat([var.task.security_group_id], var.extra_security_group_ids)
  topic_arn             = aws_sns_topic.outcome.arn
  loop_bucket           = var.loop_bucket
  task_log_group        = var.task.log_group_name
  model_alias           = var.model_alias
  step_timeout_seconds  = var.step_timeout_seconds
  train_timeout_seconds = var.task_timeout_seconds
  max_retries           = var.max_retries
}

resource "aws_sfn_state_machine" "this" {
  name     = var.name
  role_arn = module.role["state-machine"].arn
  type     = "STANDARD"

  definition = module.workflow.definition

  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.state_machine.arn}:*"
    include_execution_data = true
    level                  = "ALL"
  }

  tracing_configuration {
    enabled = true
  }

  tags = var.platform.tags
}

# --- schedule --------------------------------------------------------------------------------
data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "StartTraining"
    effect    = "Allow"
    actions   = ["states:StartExecution"]
    resources = [local.state_machine_arn]
  }
  statement {
    sid       = "EncryptedSchedule"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [var.platform.kms_key_arn]
  }
}

# --- roles of the state machine and the schedule ----------------------------------------------
# Each trusts its service, for this account only.
module "role" {
  source = "../service_role"
  for_each = {
    state-machine = { service = "states.amazonaws.com", policy_name = "run-training-notify", policy_json = data.aws_iam_policy_document.state_machine.json }
    scheduler     = { service = "scheduler.amazonaws.com", policy_name = "start-training", policy_json = data.aws_iam_policy_document.scheduler.json }
  }
  name        = "${var.name}-${each.key}"
  service     = each.value.service
  policy_name = each.value.policy_name
  policy_json = each.value.policy_json
  tags        = var.platform.tags
}

resource "aws_scheduler_schedule" "this" {
  name                         = var.name
  description                  = "Retrain the dropout model"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.platform.kms_key_arn

  flexible_time_window {
    mode                      = "FLEXIBLE"
    maximum_window_in_minutes = 15
  }

  target {
    arn      = aws_sfn_state_machine.this.arn
    role_arn = module.role["scheduler"].arn
    input    = jsonencode({})

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }
  }
}
