# S3 remote state of "stg" (the bucket is passed as -backend-config="bucket=...").
# use_lockfile: Terraform >= 1.11 locks the state with a conditional write of <key>.tflock in
# the same bucket; no DynamoDB lock table is needed.
key          = "dropout/stg/terraform.tfstate"
encrypt      = true
use_lockfile = true
