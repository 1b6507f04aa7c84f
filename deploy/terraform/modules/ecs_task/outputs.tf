output "task_definition_arn" {
  description = "ARN of the task definition's latest revision."
  value       = aws_ecs_task_definition.this.arn
}

output "family" {
  description = "Family of the task definition."
  value       = aws_ecs_task_definition.this.family
}

output "log_group_name" {
  description = "Log group of the task's containers."
  value       = aws_cloudwatch_log_group.this.name
}

output "execution_role_arn" {
  description = "Role of the ECS agent for this task."
  value       = module.role["execution"].arn
}

output "task_role_arn" {
  description = "Role of the task's containers."
  value       = module.role["task"].arn
}

output "security_group_id" {
  description = "Security group of the task."
  value       = aws_security_group.this.id
}

output "service_name" {
  description = "Name of the service (null without one)."
  value       = one(concat(aws_ecs_service.this[*].name, aws_ecs_service.autoscaled[*].name))
}

output "client_security_group_id" {
  description = "Security group that lets a task reach the endpoint (null without one)."
  value       = one(aws_security_group.clients[*].id)
}

# The service (above) is placed by this module; a task without one is run by its caller (the
# training state machine's RunTask), which takes the same placement from here.
output "placement" {
  description = "Where the task runs: the cluster, its capacity provider and the task's subnets (with family, security_group_id and log_group_name, what a RunTask of it takes)."
  value = {
    cluster_arn       = var.platform.cluster_arn
    capacity_provider = var.platform.capacity_provider
    subnet_ids        = var.platform.subnet_ids
  }
}
