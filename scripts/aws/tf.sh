#!/usr/bin/env bash
# Terraform for one environment: init against the S3 state, plan, apply, outputs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/tf.sh ENV COMMAND [--tag TAG] [-- TERRAFORM_ARGS...]

Run Terraform in deploy/terraform/live for environment ENV (envs/ENV.tfvars) with the shared
S3 state (envs/ENV.backend.hcl).

  ENV       stg or prod
  COMMAND   init          configure the S3 backend (run by the other commands)
            plan          write ENV.tfplan for image tag TAG and show it
            apply         apply ENV.tfplan if it exists, else plan and apply
            repositories  create/update only the ECR repositories and the (empty) MLflow
                          registry secrets, before the first image push and secrets.sh
            output        print the outputs as JSON
  --tag TAG image tag to deploy (default: the commit SHA of HEAD, clean work tree)
  -h, --help

Environment: TF_STATE_BUCKET (required: the bucket made by deploy/terraform/bootstrap),
AWS credentials, AWS_REGION (optional), TF_AUTO_APPROVE=1 to apply without the prompt (CI).
USAGE
}

env_name=""
command_name=""
tag=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      if [ -z "$env_name" ]; then env_name="$1"
      elif [ -z "$command_name" ]; then command_name="$1"
      else die "unexpected argument $1"; fi
      shift ;;
  esac
done
check_env_name "$env_name"
case "$command_name" in
  init | plan | apply | repositories | output) ;;
  "") die "missing COMMAND (init, plan, apply, repositories, output); see --help" ;;
  *) die "unknown COMMAND '$command_name' (init, plan, apply, repositories, output)" ;;
esac
[ -n "${TF_STATE_BUCKET:-}" ] || die "TF_STATE_BUCKET is not set (the state bucket from deploy/terraform/bootstrap)"
need_cmd terraform

dir="$(tf_dir)"
# One working directory per environment (backend and modules), so that stg and prod never share
# an initialisation; the plan file is named after the environment too.
export TF_DATA_DIR="$dir/.terraform/$env_name"
plan_file="$env_name.tfplan"
tf() { terraform -chdir="$dir" "$@"; }

tf init -input=false -reconfigure -backend-config="envs/$env_name.backend.hcl" \
  -backend-config="bucket=$TF_STATE_BUCKET" -backend-config="region=$(env_region "$env_name")" >/dev/null
[ "$command_name" = init ] && { echo "initialised $dir for $env_name"; exit 0; }
[ "$command_name" = output ] && { tf output -json; exit 0; }

tag="$(resolve_tag "$tag")"
approve=()
[ "${TF_AUTO_APPROVE:-0}" = 1 ] && approve=(-auto-approve)
vars=(-var-file="envs/$env_name.tfvars" -var "image_tag=$tag")

case "$command_name" in
  repositories)
    # A targeted apply refuses to run while the state has objects at addresses that `moved`
    # blocks rename (after an upgrade of the configuration): record the moves (and nothing
    # else: a refresh-only apply changes no remote object) first.
    tf apply -input=false -lock-timeout=5m -refresh-only ${approve[@]+"${approve[@]}"} "${vars[@]}"
    # The one targeted apply: images must be pushed, and the registry secrets seeded
    # (secrets.sh), before the services reference them. It targets the environment guard too, so
    # that this first apply also fails on another environment's state.
    tf apply -input=false -lock-timeout=5m ${approve[@]+"${approve[@]}"} "${vars[@]}" -target=module.ecr \
      -target=module.mlflow.aws_secretsmanager_secret.auth -target=terraform_data.environment \
      ${extra[@]+"${extra[@]}"}
    ;;
  plan)
    tf plan -input=false -lock-timeout=5m "${vars[@]}" -out="$plan_file" ${extra[@]+"${extra[@]}"}
    ;;
  apply)
    if [ ! -f "$dir/$plan_file" ]; then
      tf plan -input=false -lock-timeout=5m "${vars[@]}" -out="$plan_file" ${extra[@]+"${extra[@]}"}
    fi
    tf apply -input=false -lock-timeout=5m "$plan_file"
    rm -f "$dir/$plan_file"
    ;;
esac
