output "cluster_name" {
  description = "Name of the cluster."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the cluster."
  value       = aws_ecs_cluster.this.arn
}

output "requires_compatibilities" {
  description = "Launch type that task definitions must declare for this cluster's capacity."
  value       = var.capacity_type == "EC2" ? "EC2" : "FARGATE"
}

output "capacity_provider" {
  description = "Capacity provider every service and the training task use."
  value       = var.capacity_type == "EC2" ? aws_ecs_capacity_provider.ec2[0].name : "FARGATE"
  # Services may only name a provider once it is associated with the cluster.
  depends_on = [aws_ecs_cluster_capacity_providers.this]
}
