# Staging: small, cheap, disposable; the region comes from here, the image tag from CD.
region                          = "eu-west-1"
vpc_cidr_block                  = "10.40.0.0/16"
az_count                        = 2
one_nat_gateway_per_az          = false
stream_capacity_mode            = "PROVISIONED"
input_shard_count               = 4
stream_retention_hours          = 24
ecs_capacity_type               = "FARGATE"
consumer_min_count              = 1
consumer_max_count              = 4
training_schedule_expression    = "cron(0 3 ? * MON *)"
training_schedule_enabled       = false
mlflow_db_instance_class        = "db.t4g.micro"
mlflow_db_multi_az              = false
mlflow_db_backup_retention_days = 7
allow_destroy_with_data         = true
log_retention_days              = 365
