#!/usr/bin/env bash
# Send test records to an environment's input stream and read the predictions back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/smoke.sh ENV [--count N] [--rate R] [--malformed-share S] [--data PATH] [--wait-seconds W]

Replay N dataset rows as student events on dropout-ENV's input stream (python -m consumer
replay, no endpoint override: the real Kinesis), then print the predictions stream and the
dead-letter stream (python -m consumer tail).

  ENV                  stg or prod
  --count N            records to send (default 50)
  --rate R             records per second (default 10)
  --malformed-share S  share of deliberately malformed records, 0..1 (default 0.1)
  --data PATH          UCI data file (default: DATA_PATH or the cached download)
  --wait-seconds W     stop reading after W seconds without a new record (default 30)
  -h, --help

Needs the project's virtualenv (make setup; PYTHON overrides .venv/bin/python) and AWS
credentials allowed to put records on the input stream and read the output streams.
Stream names: INPUT_STREAM, PREDICTIONS_STREAM, DEAD_LETTER_STREAM (defaults as in Terraform).
USAGE
}

env_name=""
count=50
rate=10
malformed=0.1
data=""
wait_seconds=30
is_number() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --count) [ $# -ge 2 ] || die "--count needs a value"; count="$2"; shift 2 ;;
    --rate) [ $# -ge 2 ] || die "--rate needs a value"; rate="$2"; shift 2 ;;
    --malformed-share) [ $# -ge 2 ] || die "--malformed-share needs a value"; malformed="$2"; shift 2 ;;
    --data) [ $# -ge 2 ] || die "--data needs a value"; data="$2"; shift 2 ;;
    --wait-seconds) [ $# -ge 2 ] || die "--wait-seconds needs a value"; wait_seconds="$2"; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer"
is_number "$rate" || die "--rate must be a number"
is_number "$malformed" || die "--malformed-share must be a number between 0 and 1"
is_number "$wait_seconds" || die "--wait-seconds must be a number"
[ -z "$data" ] || [ -f "$data" ] || die "--data: no such file: $data"

python="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
[ -x "$python" ] || die "no Python at $python (run make setup, or set PYTHON)"

# Empty endpoint variables mean "the real AWS endpoints" (consumer/config.py).
export AWS_REGION
AWS_REGION="$(env_region "$env_name")"
export KINESIS_ENDPOINT_URL="" DYNAMODB_ENDPOINT_URL=""
export INPUT_STREAM="${INPUT_STREAM:-student-events}"
export PREDICTIONS_STREAM="${PREDICTIONS_STREAM:-student-predictions}"
export DEAD_LETTER_STREAM="${DEAD_LETTER_STREAM:-student-dead-letters}"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"

replay=("$python" -m consumer replay --count "$count" --rate "$rate" --malformed-share "$malformed")
[ -z "$data" ] || replay+=(--data "$data")
echo "sending $count records to $INPUT_STREAM in $AWS_REGION"
"${replay[@]}"

echo "predictions ($PREDICTIONS_STREAM):"
"$python" -m consumer tail --stream "$PREDICTIONS_STREAM" --wait-seconds "$wait_seconds"
echo "dead letters ($DEAD_LETTER_STREAM):"
"$python" -m consumer tail --stream "$DEAD_LETTER_STREAM" --wait-seconds "$wait_seconds"
