# Production: highly available network and database, weekly retraining.
region                          = "eu-west-1"
vpc_cidr_block                  = "10.50.0.0/16"
az_count                        = 3
one_nat_gateway_per_az          = true
stream_capacity_mode            = "PROVISIONED"
input_shard_count               = 8
stream_retention_hours          = 168
ecs_capacity_type               = "FARGATE"
consumer_min_count              = 2
consumer_max_count              = 8
training_schedule_expression    = "cron(0 3 ? * MON *)"
training_schedule_enabled       = true
mlflow_db_instance_class        = "db.t4g.medium"
mlflow_db_multi_az              = true
mlflow_db_backup_retention_days = 30
allow_destroy_with_data         = false
log_retention_days              = 365
