#!/usr/bin/env bash
# Helpers sourced by the scripts in scripts/aws (not run on its own).
# Names follow deploy/terraform: every resource of environment ENV is called dropout-ENV-...

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENVIRONMENTS=(stg prod)

die() {
  echo "error: $*" >&2
  exit 1
}

need_cmd() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is not installed or not on PATH"
  done
}

check_env_name() {
  local env="${1:-}" known
  [ -n "$env" ] || die "missing ENV (one of: ${ENVIRONMENTS[*]}); see --help"
  for known in "${ENVIRONMENTS[@]}"; do
    [ "$env" = "$known" ] && return 0
  done
  die "unknown environment '$env' (one of: ${ENVIRONMENTS[*]})"
}

# The one root configuration of every environment; envs/ENV.tfvars and envs/ENV.backend.hcl
# in it select the environment.
tf_dir() {
  echo "$REPO_ROOT/deploy/terraform/live"
}

env_tfvars() {
  echo "$(tf_dir)/envs/$1.tfvars"
}

# Region of an environment: AWS_REGION if set, else the `region` of its envs/ENV.tfvars.
env_region() {
  if [ -n "${AWS_REGION:-}" ]; then
    echo "$AWS_REGION"
    return 0
  fi
  local region
  region="$(sed -nE 's/^region[[:space:]]*=[[:space:]]*"([^"]+)".*/\1/p' "$(env_tfvars "$1")" | head -n1)"
  [ -n "$region" ] || die "no region: set AWS_REGION or 'region' in $(env_tfvars "$1")"
  echo "$region"
}

aws_account_id() {
  aws sts get-caller-identity --query Account --output text
}

# The commit to deploy: the given tag, or HEAD of a clean work tree (tags are immutable in ECR,
# so an image built from uncommitted changes must never get a commit's name).
resolve_tag() {
  local tag="${1:-}"
  if [ -n "$tag" ]; then
    echo "$tag"
    return 0
  fi
  need_cmd git
  if [ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no)" ]; then
    die "the work tree has uncommitted changes: commit them or pass --tag"
  fi
  git -C "$REPO_ROOT" rev-parse HEAD
}
