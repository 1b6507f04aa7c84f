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
