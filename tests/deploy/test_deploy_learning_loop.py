"""The learning loop on AWS, statically: the loop's bucket (KMS, versioning, retention per
prefix, no public access, TLS and SSE-KMS only), who may do what under which prefix (walked in
the parsed policy documents of every module), the prefixes and digests against the code that
writes and reads them, the task environments, the Pushgateway service, and the scripts and
workflows that seed the UCI mirror before the first run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import (
    BUCKET,
    ECS_TASK,
    LIVE,
    MODULES,
    REPO_ROOT,
    SERVICE_ROLE,
    as_list,
    assert_ecs_task_enforces_read_only_root_file_systems,
    assert_private_encrypted_versioned_bucket,
    blocks,
    dir_text,
    endpoint_rules,
    load_yaml,
    module_call,
    parse_hcl,
    strip_quotes,
    task_spec,
)

LOOP = MODULES / "loop_store"


def module_blocks(
    parsed: dict[Path, dict[str, Any]], directory: Path, kind: str, type_name: str
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path, doc in parsed.items():
        if path.parent == directory:
            for block_type, name, body in blocks(doc, kind):
                if block_type == type_name:
                    found[name] = body
    return found


def module_locals(parsed: dict[Path, dict[str, Any]], directory: Path) -> dict[str, Any]:
    """The module's locals; a map value (parsed as a one-element list of dicts) unwrapped."""
    values: dict[str, Any] = {}
    for path, doc in parsed.items():
        if path.parent == directory:
            for entry in doc.get("locals", []):
                for name, value in entry.items():
                    single_map = isinstance(value, list) and len(value) == 1
                    values[name] = value[0] if single_map and isinstance(value[0], dict) else value
    return values


def variable_defaults(directory: Path) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    for entry in parse_hcl(directory / "variables.tf")["variable"]:
        for name, body in entry.items():
            defaults[name] = body.get("default")
    return defaults


# --- the bucket ------------------------------------------------------------------------------
def test_the_loop_bucket_is_private_encrypted_and_versioned(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    # The loop's bucket is a modules/bucket, named, encrypted and emptied as the loop says.
    call = module_call(parsed_terraform, LOOP, "bucket")
    assert strip_quotes(call["source"]) == "../bucket"
    assert call["name"] == "${local.bucket_name}"
    assert call["kms_key_arn"] == "${var.kms_key_arn}"
    assert call["force_destroy"] == "${var.force_destroy}"
    assert module_locals(parsed_terraform, LOOP)["bucket_name"] == "${var.name}-${local.account}"
    assert_private_encrypted_versioned_bucket(parsed_terraform)
    stack = dir_text(LIVE)
    call = re.search(r'module "loop_store" \{(.*?)\n\}', stack, re.S)
    assert call
    assert re.search(r'name\s*=\s*"\$\{local\.name\}-loop"', call.group(1)), "dropout-<env>-loop-*"
    assert re.search(r"kms_key_arn\s*=\s*module\.kms\.key_arn", call.group(1))
    assert re.search(r"force_destroy\s*=\s*var\.allow_destroy_with_data", call.group(1))


def test_each_prefix_has_its_retention(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    """Captures and outcomes are personal data: they expire after a configurable number of
    days (400 by default: an academic year plus a term); the institution's datasets live
    longer (reproducible models); run summaries hold aggregates only; the UCI mirror (public
    data) never expires. Every noncurrent version goes after noncurrent_version_days."""
    call = module_call(parsed_terraform, LOOP, "bucket")
    assert call["expiration"] == "${local.retention}"
    assert call["noncurrent_version_days"] == "${var.noncurrent_version_days}"
    assert call["expire_delete_markers"] is True
    lifecycle = module_blocks(
        parsed_terraform, BUCKET, "resource", "aws_s3_bucket_lifecycle_configuration"
    )["this"]
    retention = module_locals(parsed_terraform, LOOP)["retention"]
    assert {k: (v["prefix"], v["days"]) for k, v in retention.items()} == {
        "captures": ("${local.prefixes.captures}", "${var.capture_retention_days}"),
        "outcomes": ("${local.prefixes.outcomes}", "${var.outcome_retention_days}"),
        "datasets": ("${local.institution_datasets}", "${var.dataset_retention_days}"),
        "runs": ("${local.prefixes.runs}", "${var.run_summary_retention_days}"),
    }
    (dynamic,) = lifecycle["dynamic"]
    content = dynamic["rule"]["content"][0]
    assert dynamic["rule"]["for_each"] == "${var.expiration}"
    assert content["filter"][0]["prefix"] == "${rule.value.prefix}"
    assert content["expiration"][0]["days"] == "${rule.value.days}"
    (everything,) = lifecycle["rule"]
    assert everything["filter"] == [{}]
    assert everything["noncurrent_version_expiration"][0]["noncurrent_days"] == (
        "${var.noncurrent_version_days}"
    )
    (markers,) = everything["dynamic"]
    assert markers["expiration"]["for_each"] == "${var.expire_delete_markers ? [True] : []}"
    assert markers["expiration"]["content"][0]["expired_object_delete_marker"] is True
    assert everything["abort_incomplete_multipart_upload"][0]["days_after_initiation"] == 7
    defaults = variable_defaults(LOOP)
    assert defaults["capture_retention_days"] == 400
    assert defaults["outcome_retention_days"] == 400
    assert defaults["dataset_retention_days"] > defaults["capture_retention_days"]
    assert defaults["run_summary_retention_days"] <= 90
    assert defaults["noncurrent_version_days"] <= 30
    stack = variable_defaults(LIVE)
    assert stack["loop_capture_retention_days"] == defaults["capture_retention_days"]
    assert stack["loop_outcome_retention_days"] == defaults["outcome_retention_days"]
    assert stack["loop_dataset_retention_days"] == defaults["dataset_retention_days"]
    # The UCI mirror is under datasets/ but not institution-: no rule expires it.
    prefixes = module_locals(parsed_terraform, LOOP)
    assert prefixes["institution_datasets"] == "${local.prefixes.datasets}institution-"
    assert prefixes["uci_mirror_key"] == "${local.prefixes.datasets}uci/${var.uci_sha256}/data.csv"


def test_the_bucket_policy_only_denies_insecure_or_foreign_encryption(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    # modules/bucket: no request without TLS, plus the loop's statements.
    bucket = module_blocks(parsed_terraform, BUCKET, "data", "aws_iam_policy_document")["bucket"]
    assert bucket["source_policy_documents"] == "${var.policy_documents}"
    (tls,) = as_list(bucket["statement"])
    assert strip_quotes(tls["sid"]) == "DenyInsecureTransport"
    assert strip_quotes(tls["effect"]) == "Deny", "grants nothing"
    assert tls["actions"] == ["s3:*"]
    (condition,) = as_list(tls["condition"])
    assert (condition["test"], condition["variable"], condition["values"]) == (
        "Bool", "aws:SecureTransport", ["false"])  # fmt: skip
    assert module_call(parsed_terraform, LOOP, "bucket")["policy_documents"] == [
        "${data.aws_iam_policy_document.encryption.json}"
    ]
    # The loop's: one Deny statement of PutObject per entry of local.denied_uploads.
    document = module_blocks(parsed_terraform, LOOP, "data", "aws_iam_policy_document")[
        "encryption"
    ]
    assert "statement" not in document
    (dynamic,) = document["dynamic"]
    assert dynamic["statement"]["for_each"] == "${local.denied_uploads}"
    (statement,) = dynamic["statement"]["content"]
    assert strip_quotes(statement["effect"]) == "Deny", "grants nothing"
    assert strip_quotes(statement["sid"]) == "${statement.key}"
    assert statement["actions"] == ["s3:PutObject"]
    assert statement["resources"] == ["${module.bucket.arn}/*"]
    (condition,) = statement["dynamic"]
    assert condition["condition"]["for_each"] == "${statement.value}"
    assert condition["condition"]["content"][0] == {
        "test": "${condition.value.test}",
        "variable": "${condition.value.variable}",
        "values": ["${condition.value.value}"],
    }
    locals_ = module_locals(parsed_terraform, LOOP)

    def conditions(sid: str) -> set[tuple[str, str, tuple[str, ...]]]:
        names = {"${local.sse}": locals_["sse"], "${local.key_id}": locals_["key_id"]}
        return {
            (c["test"], names.get(c["variable"], c["variable"]), (c["value"],))
            for c in locals_["denied_uploads"][sid]
        }

    sse = "s3:x-amz-server-side-encryption"
    key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    assert set(locals_["denied_uploads"]) == {
        "DenyOtherEncryption", "DenyOtherKeys", "DenyAwsManagedKey",
        "DenyCustomerProvidedKeys"}  # fmt: skip
    # A header that asks for another algorithm, another key, aws:kms without a key (the AWS
    # managed aws/s3), or a customer key; no header at all gets the default (the project key).
    assert conditions("DenyOtherEncryption") == {
        ("Null", sse, ("false",)), ("StringNotEquals", sse, ("aws:kms",))}  # fmt: skip
    assert conditions("DenyOtherKeys") == {
        ("Null", key_id, ("false",)),
        ("StringNotEquals", key_id, ("${var.kms_key_arn}",)),
    }
    assert conditions("DenyAwsManagedKey") == {
        ("StringEquals", sse, ("aws:kms",)), ("Null", key_id, ("true",))}  # fmt: skip
    assert conditions("DenyCustomerProvidedKeys") == {
        ("Null", "s3:x-amz-server-side-encryption-customer-algorithm", ("false",))}  # fmt: skip


# --- the prefixes and the UCI digest agree with the code -------------------------------------
def test_the_prefixes_are_the_codes(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    from common.capture_format import CAPTURES_PREFIX, DATASETS_PREFIX, OUTCOMES_PREFIX
    from training.loop.dataset import DATASETS_PREFIX as BUILT_DATASETS

    prefixes = module_locals(parsed_terraform, LOOP)["prefixes"]
    assert prefixes == {
        "captures": CAPTURES_PREFIX,
        "outcomes": OUTCOMES_PREFIX,
        "datasets": DATASETS_PREFIX,
        "runs": "runs/",
    }
    assert BUILT_DATASETS == DATASETS_PREFIX
    # The dataset builder names its files institution-<sha12>.csv: what the training role may
    # write, and what the dataset retention rule expires.
    source = (REPO_ROOT / "training" / "loop" / "dataset.py").read_text(encoding="utf-8")
    assert 'name=f"institution-{digest[:12]}.csv"' in source
    training = module_locals(parsed_terraform, MODULES / "training")
    assert training["captures"] == f"${{var.loop_bucket_arn}}/{CAPTURES_PREFIX}*"
    assert training["outcomes"] == f"${{var.loop_bucket_arn}}/{OUTCOMES_PREFIX}*"
    assert training["datasets"] == f"${{var.loop_bucket_arn}}/{DATASETS_PREFIX}*"
    assert training["institution_datasets"] == (
        f"${{var.loop_bucket_arn}}/{DATASETS_PREFIX}institution-*"
    )
    assert training["run_summaries"] == "${var.loop_bucket_arn}/runs/*"
    workflow = variable_defaults(MODULES / "retraining_workflow")
    assert workflow["run_summary_prefix"] == prefixes["runs"]
    consumer = module_locals(parsed_terraform, MODULES / "consumer")
    assert consumer["capture_objects"] == (
        f"${{var.loop_bucket_arn}}/{CAPTURES_PREFIX}${{var.model_name}}/*"
    )
    from common.capture_format import capture_key

    assert capture_key("m", __import__("datetime").date(2026, 1, 1), "s", ("1", 0), ("2", 0)) \
        .startswith(f"{CAPTURES_PREFIX}m/")  # fmt: skip


def test_the_uci_mirror_names_the_official_digest() -> None:
    from common.data_files import UCI_SHA256

    assert variable_defaults(LIVE)["uci_sha256"] == UCI_SHA256
    script = (REPO_ROOT / "scripts" / "aws" / "seed-data.sh").read_text(encoding="utf-8")
    assert "common/data_files.py" in script, "the script checks the same pinned digest"
    assert "datasets/uci/$sha256/data.csv" in script


# --- who may do what in the bucket -----------------------------------------------------------
def s3_grants(parsed: dict[Path, dict[str, Any]]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(module, policy document) -> {(action, resource)} of every Allow on S3 or KMS."""
    grants: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for path, doc in parsed.items():
        for kind, name, body in blocks(doc, "data"):
            if kind != "aws_iam_policy_document":
                continue
            for statement in as_list(body.get("statement")):
                if strip_quotes(statement.get("effect", "Allow")) == "Deny":
                    continue
                for raw in as_list(statement.get("actions")):
                    action = strip_quotes(raw)
                    if action.startswith("s3:"):
                        for resource in as_list(statement.get("resources")):
                            grants.setdefault((path.parent.name, name), set()).add(
                                (action, strip_quotes(resource))
                            )
    return grants


def test_each_role_has_exactly_its_share_of_the_loop(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    grants = {
        key: value
        for key, value in s3_grants(parsed_terraform).items()
        if key[0] in {"consumer", "training", "loop_store", "pushgateway"}
    }
    assert grants == {
        # The consumer writes capture objects of its own model, nothing else.
        ("consumer", "task"): {("s3:PutObject", "${local.capture_objects}")},
        # The training job reads the three inputs, writes its datasets and run summaries.
        ("training", "task"): {
            ("s3:ListBucket", "${var.loop_bucket_arn}"),
            ("s3:GetObject", "${local.captures}"),
            ("s3:GetObject", "${local.outcomes}"),
            ("s3:GetObject", "${local.datasets}"),
            ("s3:PutObject", "${local.institution_datasets}"),
            ("s3:PutObject", "${local.run_summaries}"),
        },
        # The state machine reads the run summaries, nothing else.
        ("training", "state_machine"): {("s3:GetObject", "${local.run_summaries}")},
        # A registrar uploads outcomes, nothing else.
        ("loop_store", "outcomes_importer"): {
            ("s3:PutObject", "${module.bucket.arn}/${local.prefixes.outcomes}*")
        },
    }
    listing = next(
        s
        for _, name, body in [
            b for p, d in parsed_terraform.items() if p.parent.name == "training"
            for b in blocks(d, "data")
        ]
        if name == "task"
        for s in as_list(body["statement"])
        if strip_quotes(s.get("sid", "")) == "ListTheLoopsInputs"
    )  # fmt: skip
    (condition,) = as_list(listing["condition"])
    assert (strip_quotes(condition["test"]), strip_quotes(condition["variable"])) == (
        "StringLike", "s3:prefix")  # fmt: skip
    assert sorted(condition["values"]) == ["captures/*", "datasets/*", "outcomes/*"]


def test_the_roles_that_write_sse_kms_objects_may_use_the_key(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    def kms_actions(directory: str, document: str) -> set[str]:
        return {
            strip_quotes(a)
            for p, d in parsed_terraform.items() if p.parent.name == directory
            for _, name, body in blocks(d, "data") if name == document
            for s in as_list(body["statement"])
            for a in as_list(s["actions"]) if strip_quotes(a).startswith("kms:")
        }  # fmt: skip

    assert "kms:GenerateDataKey" in kms_actions("consumer", "task")
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= kms_actions("training", "task")
    assert "kms:Decrypt" in kms_actions("training", "state_machine")
    assert kms_actions("loop_store", "outcomes_importer") == {"kms:GenerateDataKey"}


def test_the_outcomes_importer_role_is_optional(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    role = module_blocks(parsed_terraform, LOOP, "resource", "aws_iam_role")["outcomes_importer"]
    assert role["count"] == "${length(var.outcomes_importer_principal_arns) > 0 ? 1 : 0}"
    assert variable_defaults(LOOP)["outcomes_importer_principal_arns"] == []
    outputs = parse_hcl(LOOP / "outputs.tf")["output"]
    names = {name for entry in outputs for name in entry}
    assert {"outcomes_importer_policy_json", "outcomes_importer_role_arn"} <= names


# --- the task environments -------------------------------------------------------------------
def task_environment(parsed: dict[Path, dict[str, Any]], module: str) -> dict[str, str]:
    environment = module_locals(parsed, MODULES / module)["environment"]
    environment = environment[0] if isinstance(environment, list) else environment
    return {k: strip_quotes(v) for k, v in environment.items()}


def test_the_tasks_know_the_loop(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    consumer = task_environment(parsed_terraform, "consumer")
    assert consumer["LOOP_URI"] == "${var.loop_uri}"
    assert consumer["LOOP_S3_ENDPOINT_URL"] == "", "the code's default is the embedded stack"
    assert consumer["CAPTURE_ENABLED"] == "${tostring(var.capture_enabled)}"
    training = task_environment(parsed_terraform, "training")
    assert training["LOOP_URI"] == "${var.loop_uri}"
    assert training["LOOP_S3_ENDPOINT_URL"] == ""
    assert training["UCI_MIRROR_URI"] == "${var.uci_mirror_uri}"
    assert training["RUN_SUMMARY_URI"] == "${var.loop_uri}runs/adhoc/"
    assert training["PUSHGATEWAY_URL"] == "${var.pushgateway_url}"
    stack = dir_text(LIVE)
    wirings = {
        "consumer": (
            "loop_uri = module.loop_store.uri",
            "loop_bucket_arn = module.loop_store.bucket_arn",
            "capture_enabled = var.capture_enabled",
        ),
        "training": (
            "loop_bucket = module.loop_store.bucket",
            "loop_uri = module.loop_store.uri",
            "uci_mirror_uri = module.loop_store.uci_mirror_uri",
            "pushgateway_url = module.pushgateway.url",
        ),
    }
    for module, wiring in wirings.items():
        call = re.search(rf'module "{module}" \{{(.*?)\n\}}', stack, re.S)
        assert call
        flat = re.sub(r"\s+", " ", call.group(1))
        for line in wiring:
            assert line in flat, f"{module}: {line}"
    training_call = re.search(r'module "training" \{(.*?)\n\}', stack, re.S)
    assert training_call
    assert "module.pushgateway_task.client_security_group_id" in training_call.group(1)


# --- the Pushgateway on AWS ------------------------------------------------------------------
def test_the_pushgateway_is_the_official_image_reachable_by_training_and_scrapers(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    directory = MODULES / "pushgateway"
    image = variable_defaults(directory)["image"]
    assert re.fullmatch(r"prom/pushgateway:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}", image), image
    compose = load_yaml(REPO_ROOT / "docker-compose.yml")["services"]["pushgateway"]["image"]
    assert image.split("@")[0] == compose, "compose and AWS run the same release"
    text = dir_text(directory)
    assert '"--persistence.file="' in text
    # A modules/ecs_task with a service registered in Cloud Map (pushgateway.<namespace>), whose
    # port only the clients group and the scrapers' CIDRs reach.
    assert_ecs_task_enforces_read_only_root_file_systems()
    endpoint_rules(parsed_terraform)
    spec = task_spec(parsed_terraform, directory)
    assert "ingress" not in spec["security_group"]
    (endpoint,) = as_list(spec["service"]["endpoint"])
    assert strip_quotes(endpoint["dns_name"]) == "pushgateway"
    assert endpoint["cidr_blocks"] == "${var.scraper_cidr_blocks}"
    # The Pushgateway calls no AWS API and pulls a public image: its task role has no policy,
    # its execution role reads no secret and pulls from no ECR repository (only writes logs).
    assert not {"policy_name", "policy_json", "ecr_repository_arns"} & set(spec["task"])
    assert not any("secrets" in c for c in spec["task"]["containers"])
    # modules/ecs_task adds each optional part of the execution policy only when the task has
    # what it is for, and modules/service_role gives a role without policy_name no policy.
    documents = module_blocks(parsed_terraform, ECS_TASK, "data", "aws_iam_policy_document")
    assert {name: body.get("count") for name, body in documents.items()} == {
        "pull_images": "${local.pulls_images ? 1 : 0}",
        "read_secrets": "${local.reads_secrets ? 1 : 0}",
        "decrypt": "${local.pulls_images || local.reads_secrets ? 1 : 0}",
        "execution": None,
    }
    ecs_task = module_locals(parsed_terraform, ECS_TASK)
    assert ecs_task["pulls_images"] == "${length(var.task.ecr_repository_arns) > 0}"
    secrets = 'length(lookup(container,"secrets",[])) > 0'
    assert (
        ecs_task["reads_secrets"]
        == f"${{anytrue([for container in var.task.containers : {secrets}])}}"
    )
    role = module_blocks(parsed_terraform, SERVICE_ROLE, "resource", "aws_iam_role_policy")
    assert role["this"]["count"] == "${var.policy_name == None ? 0 : 1}"
    (policy_json,) = [v["policy_json"] for v in parse_hcl(SERVICE_ROLE / "variables.tf")["variable"]
                      if "policy_json" in v]  # fmt: skip
    assert [v["condition"] for v in policy_json["validation"]] == [
        "${var.policy_name == None ? var.policy_json == None : var.policy_json != None}"
    ], "policy_name and policy_json go together"
    outputs = parse_hcl(directory / "outputs.tf")["output"]
    url = next(entry["url"] for entry in outputs if "url" in entry)
    assert url["value"] == "http://${local.dns_name}:${local.port}"


# --- seeding the UCI mirror before the first run ---------------------------------------------
def test_deployments_seed_the_uci_mirror_before_training() -> None:
    deploy = (REPO_ROOT / "scripts" / "aws" / "deploy.sh").read_text(encoding="utf-8")
    apply, seed, train = (
        deploy.index('"$here/tf.sh" "$env_name" apply'),
        deploy.index('"$here/seed-data.sh" "$env_name"'),
        deploy.index('"$here/train.sh" "$env_name" --wait'),
    )
    assert apply < seed < train
    assert '"dropout-$env_name-pushgateway"' in deploy, "the monitor needs its Pushgateway"
    workflow = (REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text(encoding="utf-8")
    assert (
        workflow.index('tf.sh "$ENVIRONMENT" apply')
        < workflow.index('seed-data.sh "$ENVIRONMENT"')
        < workflow.index('train.sh "$ENVIRONMENT"')
    )
    assert '"dropout-$ENVIRONMENT-pushgateway"' in workflow


@pytest.mark.parametrize("env", ["stg", "prod"])
def test_the_environments_expose_the_loop(env: str) -> None:
    assert strip_quotes(parse_hcl(LIVE / "envs" / f"{env}.tfvars")["environment"]) == env
    outputs = parse_hcl(LIVE / "outputs.tf")["output"]
    names = {name for entry in outputs for name in entry}
    assert {"loop_bucket", "uci_mirror_uri", "pushgateway_url"} <= names


def test_every_machine_installs_the_pushgateway() -> None:
    """The embedded stack runs Debian's prometheus-pushgateway: setup.sh installs it (as root),
    CI's job installs it beside Prometheus, and devstack finds its binary."""
    setup = (REPO_ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
    assert "apt_missing+=(prometheus-pushgateway)" in setup
    assert "systemctl stop prometheus-pushgateway" in setup, "its system service is stopped"
    ci = load_yaml(REPO_ROOT / ".github" / "workflows" / "ci.yml")
    commands = "\n".join(
        str(step.get("run", "")) for job in ci["jobs"].values() for step in job.get("steps", [])
    )
    install = next(line for line in commands.splitlines() if "apt-get install" in line)
    assert "prometheus-pushgateway" in install.split()
    from devstack.services import PUSHGATEWAY_BINARIES

    assert PUSHGATEWAY_BINARIES[0] == "prometheus-pushgateway"
