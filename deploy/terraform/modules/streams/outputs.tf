output "input_stream_name" {
  description = "Name of the input stream."
  value       = aws_kinesis_stream.this["input"].name
}

output "input_stream_arn" {
  description = "ARN of the input stream."
  value       = aws_kinesis_stream.this["input"].arn
}

output "predictions_stream_name" {
  description = "Name of the predictions stream."
  value       = aws_kinesis_stream.this["predictions"].name
}

output "predictions_stream_arn" {
  description = "ARN of the predictions stream."
  value       = aws_kinesis_stream.this["predictions"].arn
}

output "dead_letter_stream_name" {
  description = "Name of the dead-letter stream."
  value       = aws_kinesis_stream.this["dead_letter"].name
}

output "dead_letter_stream_arn" {
  description = "ARN of the dead-letter stream."
  value       = aws_kinesis_stream.this["dead_letter"].arn
}
