# The three Kinesis data streams: student events in, predictions and dead letters out.
# Encrypted at rest with the customer managed key; capacity mode is a variable
# (PROVISIONED: shard counts below; ON_DEMAND: Kinesis scales the shards itself).
locals {
  provisioned = var.capacity_mode == "PROVISIONED"
  streams = {
    input       = { name = var.names.input, shards = var.input_shard_count }
    predictions = { name = var.names.predictions, shards = var.output_shard_count }
    dead_letter = { name = var.names.dead_letter, shards = var.output_shard_count }
  }
}

resource "aws_kinesis_stream" "this" {
  for_each = local.streams

  name             = each.value.name
  shard_count      = local.provisioned ? each.value.shards : null
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = var.capacity_mode
  }

  tags = var.tags
}
