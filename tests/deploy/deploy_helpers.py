"""Helpers of the deployment checks: parsing the project's files without running them."""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "deploy" / "terraform"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
MODULES = TERRAFORM_DIR / "modules"
# The log group, roles, security group, task definition and service of every ECS task.
ECS_TASK = MODULES / "ecs_task"
# Every role an AWS service assumes for this account (aws:SourceAccount).
SERVICE_ROLE = MODULES / "service_role"
# Every bucket: the state (bootstrap), the MLflow artifacts, the learning loop's store.
BUCKET = MODULES / "bucket"
# The one root configuration of every environment; live/envs/ENV.tfvars and
# live/envs/ENV.backend.hcl select one.
LIVE = TERRAFORM_DIR / "live"

# Variables that the AWS SDKs (boto3, the KCL's Java SDK) and MLflow's S3 client read by
# themselves: allowed on a service although no settings class of ours names them.
STANDARD_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "MLFLOW_S3_ENDPOINT_URL",
        # MLflow's client reads the registry credentials by itself.
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    }
)

# Process-level variables an image may set for the interpreter, the JVM or matplotlib.
RUNTIME_ENV = frozenset(
    {
        "PATH",
        "JAVA_HOME",
        "PYTHONPATH",
        "PYTHONUNBUFFERED",
        "PYTHONDONTWRITEBYTECODE",
        "PIP_DISABLE_PIP_VERSION_CHECK",
        "MPLBACKEND",
        "MPLCONFIGDIR",
    }
)


def load_module(path: Path) -> Any:
    """A script of docker/ as its image runs it (its folder first on sys.path)."""
    import importlib.util
    import sys

    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool(name: str) -> str | None:
    """A checker from the project's virtualenv (pinned in requirements/dev.txt): the one next to
    the running interpreter (a work tree may run another tree's .venv), else ./.venv, else PATH."""
    import shutil
    import sys

    for folder in (Path(sys.executable).parent, VENV_BIN):
        candidate = folder / name
        if candidate.exists():
            return str(candidate)
    return shutil.which(name)


# --- environment variables the code reads ----------------------------------------------------
def _env_names_in(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "validation_alias" and isinstance(keyword.value, ast.Constant):
                    names.add(str(keyword.value.value))
            func = node.func
            # os.environ.get("X"), os.getenv("X"), env.get("X") on os.environ copies
            if (
                isinstance(func, ast.Attribute)
                and func.attr in {"get", "getenv", "pop", "setdefault"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
                and _mentions_environ(func.value)
            ):
                names.add(node.args[0].value)
        if (
            isinstance(node, ast.Subscript)
            and _mentions_environ(node.value)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            names.add(node.slice.value)
    return names


def _mentions_environ(node: ast.AST) -> bool:
    text = ast.unparse(node)
    return "environ" in text or text in {"os", "env"}


def env_vars_read_by(*paths: Path) -> set[str]:
    """Every variable name a package (or file) reads: pydantic-settings validation aliases and
    os.environ / os.getenv look-ups, found by parsing the source (nothing is imported)."""
    names: set[str] = set()
    for path in paths:
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            names |= _env_names_in(ast.parse(file.read_text(encoding="utf-8"), str(file)))
    return names


def settings_defaults(path: Path, class_name: str) -> dict[str, Any]:
    """Literal defaults of a pydantic settings class, keyed by validation alias."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defaults: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if not (isinstance(item, ast.AnnAssign) and isinstance(item.value, ast.Call)):
                    continue
                keywords = {k.arg: k.value for k in item.value.keywords}
                alias = keywords.get("validation_alias")
                default = keywords.get("default")
                if isinstance(alias, ast.Constant) and default is not None:
                    try:
                        defaults[str(alias.value)] = ast.literal_eval(default)
                    except ValueError:
                        continue
    if not defaults:
        raise AssertionError(f"no settings class {class_name} with defaults in {path}")
    return defaults


# --- Dockerfiles ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined; `stage` counts FROM lines from 0."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def dockerfile_env(instructions: list[Instruction], stage: int) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "ENV" and ins.stage == stage:
            for token in shlex.split(ins.args):
                key, sep, value = token.partition("=")
                if sep:
                    env[key] = value
    return env


# --- compose, workflows ---------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def workflow_triggers(doc: dict[Any, Any]) -> Any:
    # YAML 1.1 reads the key `on` as the boolean true.
    return doc.get("on", doc.get(True))


# --- Terraform ------------------------------------------------------------------------------
def terraform_files(suffixes: tuple[str, ...] = (".tf",)) -> list[Path]:
    return sorted(
        p
        for p in TERRAFORM_DIR.rglob("*")
        if p.suffix in suffixes and ".terraform" not in p.parts and p.is_file()
    )


def _normalize_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normalize_value(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_normalize_value(v) for v in value]
    return value


def _normalize(body: dict[str, Any]) -> dict[str, Any]:
    """python-hcl2 wraps every attribute value in a one-element list and adds line markers.
    Unwrap attributes (`actions = ["a"]` becomes ["a"]); blocks stay lists of dicts (so does a
    map attribute, which looks the same: take its [0]); drop the markers."""
    normalized: dict[str, Any] = {}
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            normalized[key] = [_normalize(v) for v in value]
        elif isinstance(value, list) and len(value) == 1:
            normalized[key] = _normalize_value(value[0])
        elif isinstance(value, dict):  # block labels: resource "type" "name" { ... }
            normalized[key] = _normalize(value)
        else:
            normalized[key] = _normalize_value(value)
    return normalized


def parse_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return dict(_normalize(hcl2.load(handle)))


def terraform_dirs() -> list[Path]:
    return sorted({p.parent for p in terraform_files()})


def blocks(parsed: dict[str, Any], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, name, body) of every `resource`/`data` block of a parsed file."""
    found: list[tuple[str, str, dict[str, Any]]] = []
    for entry in parsed.get(kind, []):
        for type_name, named in entry.items():
            for name, body in named.items():
                found.append((type_name, name, body))
    return found


def dir_text(directory: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.tf")))


def dir_parsed(parsed: dict[Path, dict[str, Any]], directory: Path) -> list[dict[str, Any]]:
    return [doc for path, doc in parsed.items() if path.parent == directory]


def resources(
    parsed: dict[Path, dict[str, Any]], type_name: str
) -> list[tuple[Path, str, dict[str, Any]]]:
    found = []
    for path, doc in parsed.items():
        for kind, name, body in blocks(doc, "resource"):
            if kind == type_name:
                found.append((path, name, body))
    return found


def module_calls(parsed: dict[Path, dict[str, Any]]) -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, name, arguments) of every module block."""
    return [
        (path, name, body)
        for path, doc in parsed.items()
        for entry in doc.get("module", [])
        for name, body in entry.items()
    ]


def module_call(parsed: dict[Path, dict[str, Any]], directory: Path, name: str) -> dict[str, Any]:
    (body,) = [b for p, n, b in module_calls(parsed) if p.parent == directory and n == name]
    return body


def task_spec(parsed: dict[Path, dict[str, Any]], directory: Path) -> dict[str, Any]:
    """What a service's module says its ECS task is: its outputs `task`, `security_group` and
    (for a service) `service`, by name. Checked to be what live/main.tf's call of
    modules/ecs_task for it (module "<service>_task") passes on, with the platform."""
    name = directory.name
    call = module_call(parsed, LIVE, f"{name}_task")
    assert strip_quotes(call["source"]) == "../modules/ecs_task", name
    assert call["platform"] == "${local.platform}", name
    outputs = {
        output: body["value"]
        for doc in dir_parsed(parsed, directory)
        for entry in doc.get("output", [])
        for output, body in entry.items()
    }
    spec = {}
    for key in ("task", "security_group", "service"):
        if key in call:
            assert call[key] == f"${{module.{name}.{key}}}", (name, key)
            (spec[key],) = as_list(outputs[key])
        else:
            assert key not in outputs, (name, key)
    return spec


def task_containers(parsed: dict[Path, dict[str, Any]], directory: Path) -> dict[str, Any]:
    """The containers of a module's task (modules/ecs_task's `task` input), by name."""
    return {strip_quotes(c["name"]): c for c in task_spec(parsed, directory)["task"]["containers"]}


def assert_ecs_task_enforces_read_only_root_file_systems() -> None:
    """modules/ecs_task merges its own keys last: no container can turn them off."""
    text = dir_text(ECS_TASK)
    assert re.search(
        r"merge\(\s*\{ essential = true \},\s*container,\s*\{\s*readonlyRootFilesystem = true\s*"
        r"logConfiguration = \{\s*logDriver = \"awslogs\"",
        text,
    )


def endpoint_rules(parsed: dict[Path, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """modules/ecs_task's rules of a private endpoint (a service's port): separate resources,
    by name."""
    rules = {
        n: b
        for kind in ("aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule")
        for p, n, b in resources(parsed, kind)
        if p.parent == ECS_TASK
    }
    assert set(rules) == {"server_from_clients", "server_from_cidrs", "clients_to_server"}
    # Into the task's group: from the clients group, and from the endpoint's CIDRs only.
    for name in ("server_from_clients", "server_from_cidrs"):
        assert rules[name]["security_group_id"] == "${aws_security_group.this.id}"
    assert rules["server_from_clients"]["referenced_security_group_id"] == (
        "${aws_security_group.clients[0].id}"
    )
    assert rules["server_from_cidrs"]["cidr_ipv4"] == "${each.value}"
    assert rules["server_from_cidrs"]["for_each"] == (
        "${toset(local.endpoint ? var.service.endpoint.cidr_blocks : [])}"
    )
    # The clients group may only reach the task's group.
    assert rules["clients_to_server"]["security_group_id"] == "${aws_security_group.clients[0].id}"
    assert rules["clients_to_server"]["referenced_security_group_id"] == (
        "${aws_security_group.this.id}"
    )
    ((_, _, group),) = [r for r in resources(parsed, "aws_security_group")
                        if r[0].parent == ECS_TASK and r[1] == "this"]  # fmt: skip
    assert "ingress" not in group, "no static ingress rule"
    (dynamic,) = [d for d in group["dynamic"] if "ingress" in d]
    assert dynamic["ingress"]["for_each"] == "${var.security_group.ingress}"
    # ...and a caller's inline rules (the dynamic block) are refused with an endpoint.
    (service_variable,) = [v["service"] for v in parse_hcl(ECS_TASK / "variables.tf")["variable"]
                           if "service" in v]  # fmt: skip
    assert [v["condition"] for v in service_variable["validation"]] == [
        "${try(var.service.endpoint,None) == None || length(var.security_group.ingress) == 0}"
    ]
    # Both variants of the service (fixed count, autoscaled) register their tasks under the
    # endpoint's Cloud Map name, which its clients resolve.
    services = {n: b for p, n, b in resources(parsed, "aws_ecs_service") if p.parent == ECS_TASK}
    assert set(services) == {"this", "autoscaled"}
    for name, service in services.items():
        (registries,) = [d["service_registries"] for d in service["dynamic"]
                         if "service_registries" in d]  # fmt: skip
        assert registries["for_each"] == "${aws_service_discovery_service.this[*].arn}", name
        assert registries["content"] == [{"registry_arn": "${service_registries.value}"}], name
    return rules


def assert_private_encrypted_versioned_bucket(parsed: dict[Path, dict[str, Any]]) -> None:
    """modules/bucket, every bucket of the project: named by its caller, no public access,
    owner-enforced objects, versioned, SSE-KMS with the caller's key and a bucket key, and the
    module's (TLS-only) bucket policy."""
    bucket = {
        kind: body
        for path, doc in parsed.items()
        if path.parent == BUCKET
        for kind, name, body in blocks(doc, "resource")
        if name == "this"
    }
    assert strip_quotes(bucket["aws_s3_bucket"]["bucket"]) == "${var.name}"
    assert bucket["aws_s3_bucket"]["force_destroy"] == "${var.force_destroy}"
    access = bucket["aws_s3_bucket_public_access_block"]
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls",
                 "restrict_public_buckets"):  # fmt: skip
        assert access[flag] is True, flag
    ownership = bucket["aws_s3_bucket_ownership_controls"]["rule"][0]
    assert strip_quotes(ownership["object_ownership"]) == "BucketOwnerEnforced"
    versioning = bucket["aws_s3_bucket_versioning"]["versioning_configuration"][0]
    assert strip_quotes(versioning["status"]) == "Enabled"
    rule = bucket["aws_s3_bucket_server_side_encryption_configuration"]["rule"][0]
    default = rule["apply_server_side_encryption_by_default"][0]
    assert strip_quotes(default["sse_algorithm"]) == "aws:kms"
    assert default["kms_master_key_id"] == "${var.kms_key_arn}"
    assert rule["bucket_key_enabled"] is True
    policy = bucket["aws_s3_bucket_policy"]["policy"]
    assert policy == "${data.aws_iam_policy_document.bucket.json}"


def strip_quotes(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --- PromQL ---------------------------------------------------------------------------------
PROMQL_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
        "bool", "offset", "inf", "nan", "le",
    }
)  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are neither functions (followed by
    a parenthesis), keywords, label names in grouping clauses or label matchers, nor durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # grouping label lists
    names: set[str] = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("("):
            continue
        if word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def exported_metric_names() -> set[str]:
    """Series names the consumer exports, from the real ConsumerMetrics class."""
    from prometheus_client import CollectorRegistry

    from consumer.observe.metrics import ConsumerMetrics

    registry = CollectorRegistry()
    ConsumerMetrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    return names


# Series the Pushgateway adds to every push group (its own metrics, not ours): when the group
# was last pushed, and when a push to it last failed.
PUSHGATEWAY_SERIES = frozenset({"push_time_seconds", "push_failure_time_seconds"})


def loop_monitor_report() -> Any:
    """A real MonitorReport (training/loop/monitor.py) on a small store in which every kind of
    figure exists: captures of version 3, outcomes for most students, some still pending."""
    import os
    import tempfile
    from datetime import UTC, date, datetime

    from common.object_store import LocalStore
    from tests.training.loop.helpers import outcome_csv, put_batch, student_line
    from training.loop.monitor import monitor

    with tempfile.TemporaryDirectory() as work:
        store = LocalStore(work)
        lines, outcomes = [], []
        for student in range(1, 101):
            probability = 0.1 + 0.8 * ((student * 37) % 100) / 100
            lines.append(student_line(student, probability))
            if student <= 70:
                label = "Dropout" if (student * 53) % 100 < probability * 100 else "Graduate"
                outcomes.append((student, label, "2026-11-30", "registrar-2026-T1"))
        put_batch(store, lines)
        store.put("outcomes/registrar-2026-T1.csv", outcome_csv(outcomes))
        stamp = datetime(2026, 12, 3, tzinfo=UTC).timestamp()
        os.utime(store.root / "outcomes" / "registrar-2026-T1.csv", (stamp, stamp))
        return monitor(
            store, reference_auc_by_version={"3": 0.88}, today=date(2026, 12, 10), n_bootstrap=20
        )


def loop_metric_names() -> set[str]:
    """Series names the learning loop's monitor pushes, from its own code: the names of the
    points of a real report (`MonitorReport.to_metrics`, which `push_to_gateway` turns into one
    gauge per name)."""
    report = loop_monitor_report()
    kinds = {dict(point.labels).get("kind") for point in report.to_metrics().points}
    assert {"realized", "estimated", "held_out"} <= kinds, "every kind of figure is covered"
    return {point.name for point in report.to_metrics().points}


def dashboard_targets(path: Path) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of a Grafana dashboard JSON."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((panel.get("title", ""), target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    return found
