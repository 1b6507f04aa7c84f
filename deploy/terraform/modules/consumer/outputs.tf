output "service_name" {
  description = "Name of the consumer service."
  value       = module.task.service_name
}

output "log_group_name" {
  description = "Log group of the consumer tasks."
  value       = module.task.log_group_name
}

output "task_role_arn" {
  description = "Role of the consumer tasks."
  value       = module.task.task_role_arn
}
