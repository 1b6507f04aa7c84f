# Where the resources of an existing deployment were, and where they are now: Terraform moves
# them in the state (the plan says "has moved to"), it does not destroy and recreate them.
# Kept here, in the one configuration that calls the modules, as long as a deployment from
# before these changes may still be planned.

# This folder was deploy/terraform/stack, a module that envs/stg and envs/prod called as
# module "stack": its resources and module calls are now at the root, under the same names.
moved {
  from = module.stack.aws_iam_service_linked_role.autoscaling
  to   = aws_iam_service_linked_role.autoscaling
}

moved {
  from = module.stack.module.kms
  to   = module.kms
}

moved {
  from = module.stack.module.network
  to   = module.network
}

moved {
  from = module.stack.module.streams
  to   = module.streams
}

moved {
  from = module.stack.module.ecr
  to   = module.ecr
}

moved {
  from = module.stack.module.cluster
  to   = module.cluster
}

moved {
  from = module.stack.module.mlflow
  to   = module.mlflow
}

moved {
  from = module.stack.module.loop_store
  to   = module.loop_store
}

moved {
  from = module.stack.module.pushgateway
  to   = module.pushgateway
}

moved {
  from = module.stack.module.consumer
  to   = module.consumer
}

moved {
  from = module.stack.module.training
  to   = module.training
}

# modules/network: the flow logs' role is a modules/service_role (one trust policy, with
# aws:SourceAccount, for every role a service assumes).
moved {
  from = module.network.aws_iam_role.flow_logs
  to   = module.network.module.flow_logs_role.aws_iam_role.this
}

moved {
  from = module.network.aws_iam_role_policy.flow_logs
  to   = module.network.module.flow_logs_role.aws_iam_role_policy.this[0]
}

# modules/consumer, training, mlflow, pushgateway: the log group, roles, security group, task
# definition and service of each task are a modules/ecs_task (module.task), with the MLflow and
# Pushgateway endpoints (Cloud Map name, clients group and its rules).
moved {
  from = module.consumer.aws_cloudwatch_log_group.this
  to   = module.consumer.module.task.aws_cloudwatch_log_group.this
}

moved {
  from = module.consumer.aws_iam_role.execution
  to   = module.consumer.module.task.module.role["execution"].aws_iam_role.this
}

moved {
  from = module.consumer.aws_iam_role_policy.execution
  to   = module.consumer.module.task.module.role["execution"].aws_iam_role_policy.this[0]
}

moved {
  from = module.consumer.aws_iam_role.task
  to   = module.consumer.module.task.module.role["task"].aws_iam_role.this
}

moved {
  from = module.consumer.aws_iam_role_policy.task
  to   = module.consumer.module.task.module.role["task"].aws_iam_role_policy.this[0]
}

moved {
  from = module.consumer.aws_security_group.this
  to   = module.consumer.module.task.aws_security_group.this
}

moved {
  from = module.consumer.aws_ecs_task_definition.this
  to   = module.consumer.module.task.aws_ecs_task_definition.this
}

moved {
  from = module.consumer.aws_ecs_service.this
  to   = module.consumer.module.task.aws_ecs_service.autoscaled[0]
}

moved {
  from = module.training.aws_cloudwatch_log_group.task
  to   = module.training.module.task.aws_cloudwatch_log_group.this
}

moved {
  from = module.training.aws_iam_role.execution
  to   = module.training.module.task.module.role["execution"].aws_iam_role.this
}

moved {
  from = module.training.aws_iam_role_policy.execution
  to   = module.training.module.task.module.role["execution"].aws_iam_role_policy.this[0]
}

moved {
  from = module.training.aws_iam_role.task
  to   = module.training.module.task.module.role["task"].aws_iam_role.this
}

moved {
  from = module.training.aws_iam_role_policy.task
  to   = module.training.module.task.module.role["task"].aws_iam_role_policy.this[0]
}

moved {
  from = module.training.aws_security_group.this
  to   = module.training.module.task.aws_security_group.this
}

moved {
  from = module.training.aws_ecs_task_definition.this
  to   = module.training.module.task.aws_ecs_task_definition.this
}

moved {
  from = module.training.aws_iam_role.state_machine
  to   = module.training.module.role["state-machine"].aws_iam_role.this
}

moved {
  from = module.training.aws_iam_role_policy.state_machine
  to   = module.training.module.role["state-machine"].aws_iam_role_policy.this[0]
}

moved {
  from = module.training.aws_iam_role.scheduler
  to   = module.training.module.role["scheduler"].aws_iam_role.this
}

moved {
  from = module.training.aws_iam_role_policy.scheduler
  to   = module.training.module.role["scheduler"].aws_iam_role_policy.this[0]
}

moved {
  from = module.mlflow.aws_cloudwatch_log_group.this
  to   = module.mlflow.module.task.aws_cloudwatch_log_group.this
}

moved {
  from = module.mlflow.aws_iam_role.execution
  to   = module.mlflow.module.task.module.role["execution"].aws_iam_role.this
}

moved {
  from = module.mlflow.aws_iam_role_policy.execution
  to   = module.mlflow.module.task.module.role["execution"].aws_iam_role_policy.this[0]
}

moved {
  from = module.mlflow.aws_iam_role.task
  to   = module.mlflow.module.task.module.role["task"].aws_iam_role.this
}

moved {
  from = module.mlflow.aws_iam_role_policy.task
  to   = module.mlflow.module.task.module.role["task"].aws_iam_role_policy.this[0]
}

moved {
  from = module.mlflow.aws_security_group.server
  to   = module.mlflow.module.task.aws_security_group.this
}

moved {
  from = module.mlflow.aws_ecs_task_definition.this
  to   = module.mlflow.module.task.aws_ecs_task_definition.this
}

moved {
  from = module.mlflow.aws_ecs_service.this
  to   = module.mlflow.module.task.aws_ecs_service.this[0]
}

moved {
  from = module.mlflow.aws_service_discovery_service.this
  to   = module.mlflow.module.task.aws_service_discovery_service.this[0]
}

moved {
  from = module.mlflow.aws_security_group.clients
  to   = module.mlflow.module.task.aws_security_group.clients[0]
}

moved {
  from = module.mlflow.aws_vpc_security_group_egress_rule.clients_to_server
  to   = module.mlflow.module.task.aws_vpc_security_group_egress_rule.clients_to_server[0]
}

moved {
  from = module.mlflow.aws_vpc_security_group_ingress_rule.server_from_clients
  to   = module.mlflow.module.task.aws_vpc_security_group_ingress_rule.server_from_clients[0]
}

moved {
  from = module.mlflow.aws_vpc_security_group_ingress_rule.server_from_operators
  to   = module.mlflow.module.task.aws_vpc_security_group_ingress_rule.server_from_cidrs
}

moved {
  from = module.pushgateway.aws_cloudwatch_log_group.this
  to   = module.pushgateway.module.task.aws_cloudwatch_log_group.this
}

moved {
  from = module.pushgateway.aws_iam_role.execution
  to   = module.pushgateway.module.task.module.role["execution"].aws_iam_role.this
}

moved {
  from = module.pushgateway.aws_iam_role_policy.execution
  to   = module.pushgateway.module.task.module.role["execution"].aws_iam_role_policy.this[0]
}

moved {
  from = module.pushgateway.aws_iam_role.task
  to   = module.pushgateway.module.task.module.role["task"].aws_iam_role.this
}

moved {
  from = module.pushgateway.aws_security_group.server
  to   = module.pushgateway.module.task.aws_security_group.this
}

moved {
  from = module.pushgateway.aws_ecs_task_definition.this
  to   = module.pushgateway.module.task.aws_ecs_task_definition.this
}

moved {
  from = module.pushgateway.aws_ecs_service.this
  to   = module.pushgateway.module.task.aws_ecs_service.this[0]
}

moved {
  from = module.pushgateway.aws_service_discovery_service.this
  to   = module.pushgateway.module.task.aws_service_discovery_service.this[0]
}

moved {
  from = module.pushgateway.aws_security_group.clients
  to   = module.pushgateway.module.task.aws_security_group.clients[0]
}

moved {
  from = module.pushgateway.aws_vpc_security_group_egress_rule.clients_to_server
  to   = module.pushgateway.module.task.aws_vpc_security_group_egress_rule.clients_to_server[0]
}

moved {
  from = module.pushgateway.aws_vpc_security_group_ingress_rule.server_from_clients
  to   = module.pushgateway.module.task.aws_vpc_security_group_ingress_rule.server_from_clients[0]
}

moved {
  from = module.pushgateway.aws_vpc_security_group_ingress_rule.server_from_scrapers
  to   = module.pushgateway.module.task.aws_vpc_security_group_ingress_rule.server_from_cidrs
}

# modules/mlflow and modules/loop_store: their buckets are a modules/bucket (private, versioned,
# SSE-KMS, TLS-only), like the state bucket of the bootstrap.
moved {
  from = module.mlflow.aws_s3_bucket.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket.this
}

moved {
  from = module.mlflow.aws_s3_bucket_public_access_block.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_public_access_block.this
}

moved {
  from = module.mlflow.aws_s3_bucket_ownership_controls.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_ownership_controls.this
}

moved {
  from = module.mlflow.aws_s3_bucket_versioning.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_versioning.this
}

moved {
  from = module.mlflow.aws_s3_bucket_server_side_encryption_configuration.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = module.mlflow.aws_s3_bucket_lifecycle_configuration.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = module.mlflow.aws_s3_bucket_policy.artifacts
  to   = module.mlflow.module.artifacts.aws_s3_bucket_policy.this
}

moved {
  from = module.loop_store.aws_s3_bucket.this
  to   = module.loop_store.module.bucket.aws_s3_bucket.this
}

moved {
  from = module.loop_store.aws_s3_bucket_public_access_block.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_public_access_block.this
}

moved {
  from = module.loop_store.aws_s3_bucket_ownership_controls.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_ownership_controls.this
}

moved {
  from = module.loop_store.aws_s3_bucket_versioning.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_versioning.this
}

moved {
  from = module.loop_store.aws_s3_bucket_server_side_encryption_configuration.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = module.loop_store.aws_s3_bucket_lifecycle_configuration.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = module.loop_store.aws_s3_bucket_policy.this
  to   = module.loop_store.module.bucket.aws_s3_bucket_policy.this
}

# Each task's modules/ecs_task is called by this configuration (module.<service>_task) instead
# of by its service's module (module.<service>.module.task).

moved {
  from = module.mlflow.module.task
  to   = module.mlflow_task
}

moved {
  from = module.pushgateway.module.task
  to   = module.pushgateway_task
}

moved {
  from = module.consumer.module.task
  to   = module.consumer_task
}

moved {
  from = module.training.module.task
  to   = module.training_task
}
