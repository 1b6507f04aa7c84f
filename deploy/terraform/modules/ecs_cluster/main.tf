# The ECS cluster of an environment. Capacity is a variable: FARGATE (no instances to manage) or
# EC2 (an Auto Scaling group of ECS-optimized instances behind a managed capacity provider).
# Every service and the training task use the cluster's default capacity provider strategy.
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  ec2         = var.capacity_type == "EC2"
  cluster_arn = "arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:cluster/${var.name}"
  instances   = "arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:container-instance/${var.name}/*"
}

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = local.ec2 ? [aws_ecs_capacity_provider.ec2[0].name] : ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = local.ec2 ? aws_ecs_capacity_provider.ec2[0].name : "FARGATE"
    weight            = 1
    base              = 0
  }
}

# --- EC2 capacity (only when capacity_type = "EC2") -------------------------------------------
data "aws_ssm_parameter" "ecs_ami" {
  count = local.ec2 ? 1 : 0
  name  = "/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id"
}

# EC2 assumes this role for the instances through their instance profile. No aws:SourceAccount
# condition here: AWS documents none for that path, and a key missing from the request would
# lock the instances out; iam:PassRole on the profile guards who can attach it.
data "aws_iam_policy_document" "instance_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "instance" {
  count              = local.ec2 ? 1 : 0
  name               = "${var.name}-ecs-instance"
  assume_role_policy = data.aws_iam_policy_document.instance_assume.json
  tags               = var.tags
}

# What the ECS container agent needs; images and logs of awsvpc tasks go through each task's
# execution role, so the instances need no ECR or CloudWatch Logs rights.
data "aws_iam_policy_document" "instance" {
  statement {
    sid     = "DiscoverPollEndpoint"
    effect  = "Allow"
    actions = ["ecs:DiscoverPollEndpoint"]
    # Wildcard resource: ecs:DiscoverPollEndpoint supports no resource-level permissions.
    resources = ["*"]
  }
  statement {
    sid    = "AgentOnThisCluster"
    effect = "Allow"
    actions = [
      "ecs:DeregisterContainerInstance",
      "ecs:RegisterContainerInstance",
      "ecs:SubmitAttachmentStateChanges",
      "ecs:SubmitContainerStateChange",
      "ecs:SubmitTaskStateChange",
      "ecs:UpdateContainerInstancesState",
    ]
    resources = [local.cluster_arn]
  }
  statement {
    sid    = "AgentOnItsInstances"
    effect = "Allow"
    actions = [
      "ecs:Poll",
      "ecs:StartTelemetrySession",
    ]
    resources = [local.instances]
  }
}

resource "aws_iam_role_policy" "instance" {
  count  = local.ec2 ? 1 : 0
  name   = "ecs-container-agent"
  role   = aws_iam_role.instance[0].id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_instance_profile" "instance" {
  count = local.ec2 ? 1 : 0
  name  = "${var.name}-ecs-instance"
  role  = aws_iam_role.instance[0].name
  tags  = var.tags
}

resource "aws_security_group" "instance" {
  count       = local.ec2 ? 1 : 0
  name        = "${var.name}-ecs-instance"
  description = "ECS container instances: no inbound traffic; the agent calls the ECS API"
  vpc_id      = var.vpc_id

  egress {
    description = "HTTPS to the ECS, ECR and other AWS APIs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = var.tags
}

resource "aws_launch_template" "instance" {
  count         = local.ec2 ? 1 : 0
  name_prefix   = "${var.name}-ecs-"
  image_id      = data.aws_ssm_parameter.ecs_ami[0].value
  instance_type = var.ec2_instance_type
  user_data = base64encode(<<-EOT
    #!/bin/bash
    echo "ECS_CLUSTER=${var.name}" >> /etc/ecs/ecs.config
    echo "ECS_ENABLE_CONTAINER_METADATA=true" >> /etc/ecs/ecs.config
  EOT
  )
  ebs_optimized          = true
  vpc_security_group_ids = [aws_security_group.instance[0].id]

  iam_instance_profile {
    arn = aws_iam_instance_profile.instance[0].arn
  }

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  monitoring {
    enabled = true
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 30
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = var.kms_key_arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(var.tags, { Name = "${var.name}-ecs" })
  }

  tags = var.tags
}

resource "aws_autoscaling_group" "instance" {
  count                 = local.ec2 ? 1 : 0
  name_prefix           = "${var.name}-ecs-"
  vpc_zone_identifier   = var.subnet_ids
  min_size              = var.ec2_min_size
  max_size              = var.ec2_max_size
  protect_from_scale_in = true

  launch_template {
    id      = aws_launch_template.instance[0].id
    version = "$Latest"
  }

  tag {
    key                 = "AmazonECSManaged"
    value               = "true"
    propagate_at_launch = true
  }

  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

resource "aws_ecs_capacity_provider" "ec2" {
  count = local.ec2 ? 1 : 0
  name  = "${var.name}-ec2"

  auto_scaling_group_provider {
    auto_scaling_group_arn         = aws_autoscaling_group.instance[0].arn
    managed_termination_protection = "ENABLED"

    managed_scaling {
      status          = "ENABLED"
      target_capacity = 100
    }
  }

  tags = var.tags
}
