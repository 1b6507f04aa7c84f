#!/usr/bin/env bash
# Seed the MLflow registry's secrets of an environment: a random value for each one that has none.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/secrets.sh ENV

Give each Secrets Manager secret of MLflow's basic-auth (created empty by Terraform, see
deploy/terraform/modules/mlflow) a random value, if it has none yet:

  dropout-ENV-mlflow/admin-password      the MLflow admin (used by the users/grants bootstrap)
  dropout-ENV-mlflow/flask-secret-key    the auth app's CSRF key
  dropout-ENV-mlflow/trainer-password    the training task's user (writes the registry)
  dropout-ENV-mlflow/consumer-password   the consumer's user (reads the registry)

A secret that has a value is never changed (re-running is safe). Terraform never sees the
values, so they are not in its state. To rotate one, put a new value yourself and restart the
MLflow service (its bootstrap sets the users' passwords again), then the consumer and training
tasks pick it up at their next start. The admin password is only used when the admin is first
created: change it afterwards with MLflow's update-password API.

  ENV         stg or prod
  -h, --help

Needs the AWS CLI with credentials allowed to list and put secret values (the deploy role).
Region: AWS_REGION, else the environment's deploy/terraform/live/envs/ENV.tfvars.
USAGE
}

env_name=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
need_cmd aws

region="$(env_region "$env_name")"
for name in admin-password flask-secret-key trainer-password consumer-password; do
  id="dropout-$env_name-mlflow/$name"
  current="$(aws secretsmanager list-secret-version-ids --region "$region" --secret-id "$id" \
    --query "length(Versions[?contains(VersionStages, 'AWSCURRENT')])" --output text)"
  if [ "$current" != 0 ]; then
    echo "$id has a value: kept"
    continue
  fi
  value="$(aws secretsmanager get-random-password --region "$region" --password-length 40 \
    --exclude-punctuation --require-each-included-type --query RandomPassword --output text)"
  # Through stdin, so the value never appears on a command line.
  printf '%s' "$value" | aws secretsmanager put-secret-value --region "$region" --secret-id "$id" \
    --secret-string file:///dev/stdin >/dev/null
  echo "$id: random value set"
done
