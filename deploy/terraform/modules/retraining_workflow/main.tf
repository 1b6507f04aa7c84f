# The retraining workflow as an Amazon States Language definition (JSONPath), and nothing else:
# no provider, no resource, so tests/deploy renders it with Terraform itself and runs it in
# moto's Step Functions interpreter. modules/training makes the state machine from it.
#
#   HasCommand ─ no ─> Monitor ─> BuildDataset ─> (dataset built? uci + institution : uci)
#        │                                              └─> Train ─> Gate ─> NotifyPromoted
#        │                                                                └─> NotifyRefused
#        └─ yes (execution input {"command": [...]}) ─> RunCommand ─> NotifyCommandDone
#   any failure, timeout or non-zero exit ─> NotifyFailure ─> Failed
#
# Each step is one ECS task (runTask.sync) running `python -m training <command>` with
# RUN_SUMMARY_URI = s3://<loop bucket>/runs/<execution name>/, so executions never share
# summaries. After the task stops the workflow checks the container's exit code itself: a
# container that exited non-zero, or never ran, fails the run whatever the .sync integration
# made of it. The step's summary (<step>.json, training/run_summary.py) is then read with the
# S3 SDK integration and parsed with States.StringToJson; the choices and the notification
# use only fields those summaries always carry.
locals {
  run_summaries = "${var.run_summary_prefix}{}/"
  summary_uri   = "States.Format('s3://${var.loop_bucket}/${local.run_summaries}', $$.Execution.Name)"

  run_task = {
    Cluster                  = var.cluster_arn
    TaskDefinition           = var.task_definition
    CapacityProviderStrategy = [{ CapacityProvider = var.capacity_provider, Weight = 1 }]
    NetworkConfiguration = {
      AwsvpcConfiguration = {
        Subnets        = var.subnet_ids
        SecurityGroups = var.security_group_ids
        AssignPublicIp = "DISABLED"
      }
    }
    PropagateTags = "TASK_DEFINITION"
  }

  # A task that could not be placed, or that failed (.sync reports a non-zero exit as
  # States.TaskFailed), is run again; the exit-code check below catches what it did not report.
  retry = [
    {
      ErrorEquals     = ["ECS.AmazonECSException", "ECS.ServerException", "States.TaskFailed"]
      IntervalSeconds = 60
      MaxAttempts     = var.max_retries
      BackoffRate     = 2
    }
  ]
  read_retry = [{ ErrorEquals = ["States.TaskFailed"], IntervalSeconds = 2, MaxAttempts = 2, BackoffRate = 2 }]
  catch      = [{ ErrorEquals = ["States.ALL"], ResultPath = "$.error", Next = "NotifyFailure" }]

  # The steps: the command (a fixed list, or a path into the state), where its summary goes,
  # and what comes after it.
  steps = {
    Monitor = {
      step     = "monitor"
      override = { Command = ["monitor"] }
      summary  = "monitor"
      result   = "$.monitor"
      next     = "KeepChampionFigures"
      timeout  = var.step_timeout_seconds
    }
    BuildDataset = {
      step     = "dataset build"
      override = { Command = ["dataset", "build"] }
      summary  = "dataset"
      result   = "$.dataset"
      next     = "ChooseTrainingData"
      timeout  = var.step_timeout_seconds
    }
    Train = {
      step     = "train"
      override = { "Command.$" = "$.train_args.command" }
      summary  = "train"
      result   = "$.train"
      next     = "DescribeFigures"
      timeout  = var.train_timeout_seconds
    }
    RunCommand = {
      step     = "the command of the execution input"
      override = { "Command.$" = "$.command" }
      summary  = null
      result   = null
      next     = "NotifyCommandDone"
      timeout  = var.train_timeout_seconds
    }
  }

  step_states = merge(
    {
      for name, step in local.steps : name => {
        Type     = "Task"
        Resource = "arn:${var.partition}:states:::ecs:runTask.sync"
        Parameters = merge(local.run_task, {
          Overrides = {
            ContainerOverrides = [merge(
              {
                Name        = var.container_name
                Environment = [{ Name = "RUN_SUMMARY_URI", "Value.$" = local.summary_uri }]
              },
              step.override,
            )]
          }
        })
        TimeoutSeconds = step.timeout
        # Only what the exit-code check needs (the task description is large): the task has one
        # container, taken out of its list here so that no later path indexes an array.
        ResultSelector = { Step = step.step, "TaskArn.$" = "$.TaskArn", "Container.$" = "States.ArrayGetItem($.Containers, 0)" }
        ResultPath     = "$.task"
        Retry          = local.retry
        Catch          = local.catch
        Next           = "${name}Exited"
      }
    },
    {
      for name, step in local.steps : "${name}Exited" => {
        Type = "Choice"
        Choices = [
          { Not = { Variable = "$.task.Container.ExitCode", IsPresent = true }, Next = "StepDidNotRun" },
          {
            Variable      = "$.task.Container.ExitCode"
            NumericEquals = 0
            Next          = step.summary == null ? step.next : "Read${name}Summary"
          },
        ]
        Default = "StepExitedNonZero"
      }
    },
    {
      for name, step in local.steps : "Read${name}Summary" => {
        Type     = "Task"
        Resource = "arn:${var.partition}:states:::aws-sdk:s3:getObject"
        Parameters = {
          Bucket  = var.loop_bucket
          "Key.$" = "States.Format('${local.run_summaries}${step.summary}.json', $$.Execution.Name)"
        }
        ResultSelector = { "summary.$" = "States.StringToJson($.Body)" }
        ResultPath     = step.result
        Retry          = local.read_retry
        Catch          = local.catch
        Next           = step.next
      } if step.summary != null
    },
  )

  # The champion's figures as sentences; each part stays "none" unless the monitor had it. Each
  # figure (in this order, then the gate) is looked for at champion.KEY of the monitor's summary
  # and, when present and not null, described by its format filled with these of its fields.
  champion = "$.monitor.summary.champion"
  figures = [
    {
      key    = "realized"
      state  = "Realized"
      format = "ROC-AUC {} (95 % interval {} to {}), F1 {}, Brier {} on {} students with an outcome (small sample: {})"
      fields = ["roc_auc.value", "roc_auc.low", "roc_auc.high", "f1.value", "brier.value", "count", "small_sample"]
    },
    {
      key    = "estimated"
      state  = "Estimated"
      format = "ROC-AUC {} (95 % interval {} to {}), F1 {}, from the calibrated probabilities of {} students awaiting an outcome (small sample: {})"
      fields = ["roc_auc.value", "roc_auc.low", "roc_auc.high", "f1.value", "count", "small_sample"]
    },
    {
      key    = "held_out"
      state  = "HeldOut"
      format = "ROC-AUC {} on the held-out rows of its training run"
      fields = ["roc_auc"]
    },
  ]
  # After a figure: the next figure's check, after the last one the gate.
  after_figure = [for i, figure in local.figures : i + 1 < length(local.figures) ? "Has${local.figures[i + 1].state}" : "Gate"]
  figure_states = merge(
    {
      DescribeFigures = {
        Type = "Pass"
        Result = {
          realized  = { text = "none yet (no outcome joined to a prediction of this version)" }
          estimated = { text = "none (no prediction of this version awaits an outcome)" }
          held_out  = { text = "unknown (no champion before this run, or no held-out figure in its contract)" }
        }
        ResultPath = "$.figures"
        Next       = "Has${local.figures[0].state}"
      }
    },
    {
      for i, figure in local.figures : "Has${figure.state}" => {
        Type = "Choice"
        Choices = [
          { Not = { Variable = "${local.champion}.${figure.key}", IsPresent = true }, Next = local.after_figure[i] },
          { Variable = "${local.champion}.${figure.key}", IsNull = true, Next = local.after_figure[i] },
        ]
        Default = "Describe${figure.state}"
      }
    },
    {
      for i, figure in local.figures : "Describe${figure.state}" => {
        Type       = "Pass"
        Parameters = { "text.$" = "States.Format('${figure.format}', ${join(", ", [for field in figure.fields : "${local.champion}.${figure.key}.${field}"])})" }
        ResultPath = "$.figures.${figure.key}"
        Next       = local.after_figure[i]
      }
    },
  )

  # train.json: decision promoted|refused, its reason, both score maps on the same held-out
  # rows; dataset.json: built|empty; monitor.json: the champion's realized, estimated and
  # held-out figures (training/run_summary.py).
  outcome_message = join(" ", [
    "States.Format('Retraining run {}: {} version {} was {} (@${var.model_alias}; forced: {}). Reason: {}.",
    "Champion before this run: version {}. Its live quality on {}: realized {}; estimated {}; held-out {}.",
    "Scores on the same held-out rows: new version {}; champion {}.",
    "Training data: {} (sha256 {}); institution dataset: {} ({}, {} students).",
    "Task logs: ${var.task_log_group}.',",
    "$$.Execution.Name, $.train.summary.model_name, $.train.summary.version, $.train.summary.decision,",
    "$.train.summary.forced, $.train.summary.reason,",
    "$.monitor.summary.champion_version, $.monitor.summary.date, $.figures.realized.text,",
    "$.figures.estimated.text, $.figures.held_out.text,",
    "$.train.summary.challenger, $.train.summary.champion,",
    "$.train.summary.data_sources, $.train.summary.data_sha256,",
    "$.dataset.summary.status, $.dataset.summary.uri, $.dataset.summary.rows)",
  ])

  other_states = {
    # An execution input {"command": ["train", "--force"]} runs that one command instead of
    # the loop; the schedule starts executions with {} (the loop).
    HasCommand = {
      Type    = "Choice"
      Choices = [{ Variable = "$.command", IsPresent = true, Next = "RunCommand" }]
      Default = "Monitor"
    }
    # monitor.json lists every version ever captured: keep the champion's part only (the state
    # payload is limited to 256 KB).
    KeepChampionFigures = {
      Type = "Pass"
      Parameters = {
        summary = {
          "date.$"                           = "$.monitor.summary.date"
          "champion_version.$"               = "$.monitor.summary.champion_version"
          "champion.$"                       = "$.monitor.summary.champion"
          "days_since_last_outcome_import.$" = "$.monitor.summary.days_since_last_outcome_import"
        }
      }
      ResultPath = "$.monitor"
      Next       = "BuildDataset"
    }
    # The UCI base (its checked copy in the loop's bucket) plus the institution's dataset
    # when one was built; UCI alone while no student has both a captured record and an outcome.
    ChooseTrainingData = {
      Type    = "Choice"
      Choices = [{ Variable = "$.dataset.summary.status", StringEquals = "built", Next = "TrainOnUciAndInstitution" }]
      Default = "TrainOnUci"
    }
    TrainOnUciAndInstitution = {
      Type       = "Pass"
      Parameters = { "command.$" = "States.Array('train', '--data', 'uci', '--data', $.dataset.summary.uri)" }
      ResultPath = "$.train_args"
      Next       = "Train"
    }
    TrainOnUci = {
      Type       = "Pass"
      Result     = { command = ["train", "--data", "uci"] }
      ResultPath = "$.train_args"
      Next       = "Train"
    }
    # `train` gates the new version itself; train.json says what it decided.
    Gate = {
      Type    = "Choice"
      Choices = [{ Variable = "$.train.summary.decision", StringEquals = "promoted", Next = "NotifyPromoted" }]
      Default = "NotifyRefused"
    }
    StepDidNotRun = {
      Type = "Pass"
      Parameters = {
        Error     = "TrainingStepDidNotRun"
        "Cause.$" = "States.Format('python -m training {} stopped without an exit code (task {}): {}', $.task.Step, $.task.TaskArn, States.JsonToString($.task.Container))"
      }
      ResultPath = "$.error"
      Next       = "NotifyFailure"
    }
    StepExitedNonZero = {
      Type = "Pass"
      Parameters = {
        Error     = "TrainingStepFailed"
        "Cause.$" = "States.Format('python -m training {} exited with code {} (common/exit_codes.py; task {})', $.task.Step, $.task.Container.ExitCode, $.task.TaskArn)"
      }
      ResultPath = "$.error"
      Next       = "NotifyFailure"
    }
    Failed = {
      Type  = "Fail"
      Error = "RetrainingFailed"
      Cause = "A step failed, timed out or exited non-zero after its retries; see the SNS message and the task logs."
    }
  }

  # Every notification is one message to the topic: its subject, its message (a States.Format
  # expression of the run's state) and what follows it.
  notifications = {
    NotifyPromoted = {
      subject = "Dropout retraining (${var.name}): new version promoted"
      message = local.outcome_message
      then    = { End = true }
    }
    NotifyRefused = {
      subject = "Dropout retraining (${var.name}): new version refused by the gate"
      message = local.outcome_message
      then    = { End = true }
    }
    NotifyCommandDone = {
      subject = "Dropout training command succeeded (${var.name})"
      message = "States.Format('Run {}: python -m training {} exited with code 0. The registry tags of a new model version say whether it became @${var.model_alias}. Task logs: ${var.task_log_group}.', $$.Execution.Name, $.command)"
      then    = { End = true }
    }
    NotifyFailure = {
      subject = "Dropout retraining FAILED (${var.name})"
      message = "States.Format('Retraining run {} failed: {}. Task logs: ${var.task_log_group}.', $$.Execution.Name, States.JsonToString($.error))"
      then    = { Next = "Failed" }
    }
  }
  notification_states = {
    for state, notification in local.notifications : state => merge(
      {
        Type     = "Task"
        Resource = "arn:${var.partition}:states:::sns:publish"
        Parameters = {
          TopicArn    = var.topic_arn
          Subject     = notification.subject
          "Message.$" = notification.message
        }
      },
      notification.then,
    )
  }

  definition = {
    Comment        = "Monitor the live model, build the institution's dataset, retrain and gate, notify."
    TimeoutSeconds = (2 * var.step_timeout_seconds + var.train_timeout_seconds) * (var.max_retries + 1) + 900
    StartAt        = "HasCommand"
    States         = merge(local.step_states, local.figure_states, local.other_states, local.notification_states)
  }
}
