output "service_name" {
  description = "Name of the consumer service."
  value       = aws_ecs_service.this.name
}

output "log_group_name" {
  description = "Log group of the consumer tasks."
  value       = aws_cloudwatch_log_group.this.name
}

output "task_role_arn" {
  description = "Role of the consumer tasks."
  value       = aws_iam_role.task.arn
}
