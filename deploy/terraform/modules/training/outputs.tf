output "state_machine_arn" {
  description = "State machine that runs one training (start it by hand with scripts/aws/train.sh)."
  value       = aws_sfn_state_machine.this.arn
}

output "outcome_topic_arn" {
  description = "SNS topic of the training outcomes."
  value       = aws_sns_topic.outcome.arn
}
