output "definition" {
  description = "The state machine definition (Amazon States Language, JSON)."
  value       = jsonencode(local.definition)
}

output "run_summaries_uri_pattern" {
  description = "Where each execution's steps leave their summaries ({} is the execution name)."
  value       = "s3://${var.loop_bucket}/${local.run_summaries}"
}
