#!/usr/bin/env bash
# Start a training run on AWS: one execution of the environment's Step Functions state machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/train.sh ENV [--wait] [-- TRAINING_ARGS...]

Start the state machine dropout-ENV-training: the learning loop's retraining workflow, one
training task on ECS per step (monitor, dataset build, train on the UCI mirror plus the
institution's dataset, which gates), with retries and timeouts; the outcome (the champion's
realized, estimated and held-out figures, the gate's decision and its reason) goes to SNS.

  ENV              stg or prod
  --wait           wait for the execution to end; exit non-zero unless it SUCCEEDED
  -- ARGS...       run this one command of the training container instead of the workflow,
                   e.g. -- train --data uci --force
  -h, --help

Environment: AWS credentials, AWS_REGION (optional).
USAGE
}

env_name=""
wait_for_end=0
command_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --wait) wait_for_end=1; shift ;;
    --) shift; command_args=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
need_cmd aws python3

region="$(env_region "$env_name")"
account="$(aws_account_id)"
partition="${AWS_PARTITION:-aws}"
machine="arn:$partition:states:$region:$account:stateMachine:dropout-$env_name-training"

input='{}'
if [ ${#command_args[@]} -gt 0 ]; then
  input="$(python3 -c 'import json, sys; print(json.dumps({"command": sys.argv[1:]}))' "${command_args[@]}")"
fi

execution="$(aws stepfunctions start-execution --region "$region" --state-machine-arn "$machine" \
  --name "manual-$(date -u +%Y%m%dT%H%M%SZ)" --input "$input" --query executionArn --output text)"
echo "started $execution"
[ "$wait_for_end" = 1 ] || exit 0

while true; do
  status="$(aws stepfunctions describe-execution --region "$region" --execution-arn "$execution" \
    --query status --output text)"
  case "$status" in
    RUNNING | PENDING_REDRIVE) sleep 30 ;;
    SUCCEEDED) echo "training run succeeded"; exit 0 ;;
    *) die "training run ended with status $status (see the SNS message and the task logs)" ;;
  esac
done
