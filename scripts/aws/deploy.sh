#!/usr/bin/env bash
# Zero to a running environment: repositories, secrets, images, everything else, then wait.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/deploy.sh ENV [--tag TAG] [--no-train]

Deploy commit TAG to environment ENV:
  1. create the ECR repositories and the registry secrets if needed  (tf.sh ENV repositories)
  2. give each registry secret without a value a random one          (secrets.sh ENV)
  3. build and push the three images                                 (push-images.sh ENV)
  4. plan and apply the whole environment                            (tf.sh ENV apply)
  5. put the checked UCI file into the learning loop's bucket, once  (seed-data.sh ENV)
  6. wait until the MLflow, Pushgateway and consumer services are stable
                                                        (aws ecs wait services-stable)
  7. start a retraining run (monitor, dataset, train) and wait for it
                                                     (train.sh ENV --wait), unless --no-train

  ENV         stg or prod
  --tag TAG   commit to deploy (default: HEAD of a clean work tree)
  --no-train  skip step 7
  -h, --help

Environment: TF_STATE_BUCKET (required), AWS credentials, AWS_REGION (optional),
TF_AUTO_APPROVE=1 to skip Terraform's confirmation prompts.
USAGE
}

env_name=""
tag=""
train=1
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --no-train) train=0; shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
[ -n "${TF_STATE_BUCKET:-}" ] || die "TF_STATE_BUCKET is not set (the state bucket from deploy/terraform/bootstrap)"
need_cmd aws docker terraform git

here="$(dirname "${BASH_SOURCE[0]}")"
tag="$(resolve_tag "$tag")"
region="$(env_region "$env_name")"

"$here/tf.sh" "$env_name" repositories --tag "$tag"
"$here/secrets.sh" "$env_name"
"$here/push-images.sh" "$env_name" --tag "$tag"
"$here/tf.sh" "$env_name" apply --tag "$tag"
"$here/seed-data.sh" "$env_name"

cluster="dropout-$env_name"
echo "waiting for the services of $cluster to become stable"
aws ecs wait services-stable --region "$region" --cluster "$cluster" \
  --services "dropout-$env_name-mlflow" "dropout-$env_name-pushgateway" "dropout-$env_name-consumer"
echo "services stable"

if [ "$train" = 1 ]; then
  "$here/train.sh" "$env_name" --wait
fi
