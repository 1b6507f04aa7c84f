#!/usr/bin/env bash
# Build the three images and push them to an environment's ECR repositories, tagged by commit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/push-images.sh ENV [--tag TAG] [--image NAME]...

Build docker/<image>.Dockerfile for consumer, training and mlflow (linux/amd64, the platform
of the ECS task definitions) and push each one to
<account>.dkr.ecr.<region>.amazonaws.com/dropout-ENV/<image>:TAG; an image whose tag exists
already is skipped (ECR tags are immutable).

  ENV           stg or prod
  --tag TAG     image tag (default: the commit SHA of HEAD; the work tree must be clean,
                because ECR tags are immutable)
  --image NAME  build only this image (repeatable): consumer, training, mlflow
  -h, --help    show this help

Needs docker and the AWS CLI with credentials for the account. The repositories are created by
`scripts/aws/tf.sh ENV apply` (or its first step, `scripts/aws/tf.sh ENV repositories`).
Region: AWS_REGION, else the environment's deploy/terraform/live/envs/ENV.tfvars.
USAGE
}

env_name=""
tag=""
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --image) [ $# -ge 2 ] || die "--image needs a value"; images+=("$2"); shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
[ ${#images[@]} -gt 0 ] || images=(consumer training mlflow)
for image in "${images[@]}"; do
  case "$image" in
    consumer | training | mlflow) ;;
    *) die "unknown image '$image' (consumer, training or mlflow)" ;;
  esac
done
need_cmd docker aws git

tag="$(resolve_tag "$tag")"
region="$(env_region "$env_name")"
registry="$(aws_account_id).dkr.ecr.${region}.amazonaws.com"

echo "logging in to $registry"
aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"

for image in "${images[@]}"; do
  uri="$registry/dropout-$env_name/$image:$tag"
  if aws ecr describe-images --region "$region" --repository-name "dropout-$env_name/$image" \
      --image-ids "imageTag=$tag" >/dev/null 2>&1; then
    echo "$uri exists already (tags are immutable): skipped"
    continue
  fi
  echo "building $uri"
  # linux/amd64: the task definitions pin runtime_platform X86_64 (an arm64 laptop would
  # otherwise build an image the tasks cannot run).
  docker build --platform linux/amd64 --file "$REPO_ROOT/docker/$image.Dockerfile" --tag "$uri" \
    --label "org.opencontainers.image.revision=$tag" "$REPO_ROOT"
  docker push "$uri"
done
echo "pushed tag $tag to $registry/dropout-$env_name"
