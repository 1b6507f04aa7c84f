# A role that one AWS service assumes on this account's behalf (ECS tasks, Step Functions,
# EventBridge Scheduler, VPC flow logs), with its inline policy. Confused deputy: the service
# may assume it only for requests of this account (aws:SourceAccount). The EC2 instance role of
# modules/ecs_cluster is not one of these (EC2 assumes it through the instance profile, a path
# with no documented aws:SourceAccount).
data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [var.service]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "this" {
  name               = var.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
  tags               = var.tags
}

# The caller's policy document (an aws_iam_policy_document of its own) as the role's inline
# policy; a role without a policy_name has none.
data "aws_iam_policy_document" "policy" {
  source_policy_documents = var.policy_name == null ? [] : [var.policy_json]
}

resource "aws_iam_role_policy" "this" {
  count  = var.policy_name == null ? 0 : 1
  name   = var.policy_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.policy.json
}
