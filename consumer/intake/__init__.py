"""Where a record enters: the KCL record processor of one shard, and KCL records as inputs."""
