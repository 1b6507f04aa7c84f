#!/usr/bin/env bash
# Upload the UCI data file once to the learning loop's bucket (datasets/uci/<sha256>/data.csv),
# after checking it against the digest the training job pins, so that scheduled runs never
# depend on the UCI site. The data is never committed to the repository.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'USAGE'
Usage: scripts/aws/seed-data.sh ENV [--file PATH]

Put the UCI "Predict Students' Dropout and Academic Success" file into the learning loop's
bucket of environment ENV, at

  s3://dropout-ENV-loop-ACCOUNT/datasets/uci/SHA256/data.csv

where SHA256 is UCI_SHA256 of common/data_files.py: the training task reads it there
(UCI_MIRROR_URI) and checks the digest again. The file comes from the official archive
(downloaded, data.csv extracted) or from --file; either way its sha256 must be the pinned one,
or nothing is uploaded. An object already at that key is left alone (re-running is safe):
the key names the content. No encryption header is sent: the bucket's default, SSE-KMS with
the project key, applies (its policy refuses any other).

  ENV          stg or prod
  --file PATH  a local copy of data.csv instead of the download
  -h, --help

Needs the AWS CLI with credentials allowed to put objects in the bucket and to use the
project key (the deploy role), and python3. Region: AWS_REGION, else the environment's
deploy/terraform/live/envs/ENV.tfvars.
USAGE
}

env_name=""
file=""
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --file) [ $# -ge 2 ] || die "--file needs a path"; file="$2"; shift 2 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$env_name" ] || die "unexpected argument $1"; env_name="$1"; shift ;;
  esac
done
check_env_name "$env_name"
[ -z "$file" ] || [ -f "$file" ] || die "--file $file: no such file"
need_cmd aws python3

# The pinned source and digest, read from common/data_files.py (no import: the script needs no
# project dependency).
read -r url sha256 member < <(python3 - "$REPO_ROOT/common/data_files.py" <<'PY'
import ast, sys
values = {}
for node in ast.parse(open(sys.argv[1], encoding="utf-8").read()).body:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        try:
            values[node.target.id] = ast.literal_eval(node.value)
        except ValueError:
            pass
print(values["UCI_URL"], values["UCI_SHA256"], values["DATA_MEMBER"])
PY
)
[[ "$sha256" =~ ^[0-9a-f]{64}$ ]] || die "no UCI_SHA256 in common/data_files.py"

region="$(env_region "$env_name")"
account="$(aws_account_id)"
bucket="dropout-$env_name-loop-$account"
key="datasets/uci/$sha256/data.csv"

if aws s3api head-object --region "$region" --bucket "$bucket" --key "$key" >/dev/null 2>&1; then
  echo "s3://$bucket/$key is there already (its key names its sha256): nothing to do"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "$file" ]; then
  cp "$file" "$work/data.csv"
else
  echo "downloading $url"
  python3 - "$url" "$member" "$work/data.csv" <<'PY'
import io, sys, urllib.request, zipfile
url, member, out = sys.argv[1:]
with urllib.request.urlopen(url, timeout=120) as response:  # the official archive (HTTPS)
    archive = response.read(50 * 1024 * 1024 + 1)
if len(archive) > 50 * 1024 * 1024:
    sys.exit("the archive is larger than 50 MB: not the UCI file")
with zipfile.ZipFile(io.BytesIO(archive)) as zipped, open(out, "wb") as handle:
    handle.write(zipped.read(member))
PY
fi

actual="$(python3 -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$work/data.csv")"
[ "$actual" = "$sha256" ] || die "sha256 $actual is not the pinned $sha256: not uploaded"

aws s3api put-object --region "$region" --bucket "$bucket" --key "$key" \
  --body "$work/data.csv" --content-type text/csv --metadata "sha256=$sha256" \
  --checksum-algorithm SHA256 >/dev/null
echo "uploaded s3://$bucket/$key (sha256 $sha256)"
