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
