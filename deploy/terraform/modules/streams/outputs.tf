output "streams" {
  description = "Name and ARN of each stream, by role: input, predictions, dead_letter (what the consumer's streams input takes)."
  value       = { for role, stream in aws_kinesis_stream.this : role => { name = stream.name, arn = stream.arn } }
}
