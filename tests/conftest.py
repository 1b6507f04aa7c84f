"""Fixtures and rules shared by the whole suite. Parts keep their own conftest.py.

Markers say what runs (pyproject.toml lists them): `unit` (added here to every test that is
not one of the others), `static` (checks of the deployment files), `integration` (real
services), `faults` (integration under injected faults), `docker` (needs a Docker engine),
`slow`; and across them `property` (Hypothesis tests, run nightly with more examples).
`make test-fast` runs `unit or static`; `make test` everything this machine can run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.support.champion import SessionChampion, session_champion
from tests.support.paths import default_data_path
from tests.support.properties import profile_name, register_profiles

# Hypothesis: a fixed, derandomized profile for CI (the same examples every run), and a
# nightly one with ten times the examples from a random seed (tests/support/properties.py,
# .github/workflows/nightly.yml).
register_profiles()
settings.load_profile(profile_name())

_KIND_MARKERS = ("integration", "static", "docker")


# Longest first: with `--dist loadfile` a module is one unit of work, and the suite ends when the
# last one does; a fail-over test that waits out a 2-minute lock must not start last. The
# modules known to be long come first, longest first (seconds in the full suite on 2 cores: a
# scheduling hint only, a stale figure costs time, never correctness); then the rest by kind.
# xdist keeps this order only with --no-loadscope-reorder (pyproject.toml).
_KNOWN_SECONDS = {
    "tests/integration/test_faults_worker_killed.py": 325,
    "tests/integration/test_faults_output.py": 280,
    "tests/integration/test_faults_registry.py": 245,
    "tests/integration/test_loop_end_to_end.py": 185,
    "tests/integration/test_stream_end_to_end.py": 130,
    "tests/integration/test_faults_worker_stopped.py": 120,
    "tests/integration/test_faults_capture.py": 100,
    "tests/integration/test_faults_resharding.py": 90,
    "tests/integration/test_stream_aggregated.py": 88,
    "tests/integration/test_faults_hostile.py": 87,
    "tests/training/test_training_cli.py": 63,
    "tests/training/fairness/test_fairness_training.py": 40,
    "tests/deploy/test_deploy_mlflow_server.py": 35,
}
_KIND_WEIGHTS = (("slow", 40), ("faults", 30), ("integration", 20), ("static", 10))


def _weight(item: pytest.Item) -> int:
    return max((w for name, w in _KIND_WEIGHTS if item.get_closest_marker(name)), default=0)


# Runs after tests/deploy/conftest.py's hook (conftest hooks run innermost first) and before
# `-m` deselects (the mark plugin's hook runs last): kind markers must be complete by then.
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not any(item.get_closest_marker(name) for name in _KIND_MARKERS):
            item.add_marker(pytest.mark.unit)
    module_weight: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        known = _KNOWN_SECONDS.get(module, 0)
        module_weight[module] = max(module_weight.get(module, 0), known, _weight(item))
    # A stable sort keeps each module's tests together and in their written order.
    items.sort(key=lambda item: -module_weight[item.nodeid.split("::", 1)[0]])


# At most this many modules that run services at once (tests/support/scheduling.py): with 4
# workers on 2 cores, the fourth worker takes unit and static modules meanwhile.
HEAVY_LANES = 3


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    if config.getoption("dist") != "loadfile":
        return None
    from tests.support.scheduling import HeavyLanesScheduling

    lanes = os.environ.get("TEST_HEAVY_LANES", str(HEAVY_LANES))
    if not lanes.isdigit() or int(lanes) < 1:
        raise pytest.UsageError(f"TEST_HEAVY_LANES must be a whole number >= 1, got {lanes!r}")
    return HeavyLanesScheduling(
        config,
        log,
        lanes=int(lanes),
        heavy=lambda module: module.startswith("tests/integration/"),
    )


def pytest_report_header(config: pytest.Config) -> list[str]:
    from devstack.backends import BackendError, choose_backend

    try:
        backend = choose_backend()
        services = f"integration services: {backend.name} ({backend.description})"
    except BackendError as error:
        services = f"integration services: {error}"
    workers = config.getoption("numprocesses", default=None)
    return [
        services + "; set STACK_BACKEND=processes|containers to choose",
        f"hypothesis profile: {profile_name()}",
        f"xdist workers: {workers or 'none (one process)'}",
    ]


@pytest.fixture(autouse=True)
def _mlflow_globals_restored() -> Iterator[None]:
    """Put back MLflow's process-wide tracking and registry URIs (and the variables they export)
    after each test: an in-process training test sets them, and under xdist a later module in the
    same worker would otherwise read another test's registry."""
    # Only when MLflow is loaded: importing it here would slow every unit test's worker.
    tracking_name = "mlflow.tracking._tracking_service.utils"
    registry_name = "mlflow.tracking._model_registry.utils"
    before = [
        getattr(sys.modules.get(name), attr, None)
        for name, attr in ((tracking_name, "_tracking_uri"), (registry_name, "_registry_uri"))
    ]
    saved_env = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    yield
    for (name, attr), value in zip(
        ((tracking_name, "_tracking_uri"), (registry_name, "_registry_uri")), before, strict=True
    ):
        if (module := sys.modules.get(name)) is not None:
            setattr(module, attr, value)
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        if key not in saved_env:
            del os.environ[key]
    os.environ.update(saved_env)


@pytest.fixture(scope="session")
def uci_data_path() -> Path:
    """The UCI file (tests/support/paths.py: TEST_DATA_PATH, the shared copy, or the checked
    download); the tests that need it fail with the reason when there is none."""
    from common.data_files import DataFileError

    try:
        path = default_data_path()
    except DataFileError as error:
        pytest.fail(f"no UCI data file: no shared copy, and the download failed: {error}")
    if not path.is_file():
        pytest.fail(f"TEST_DATA_PATH={os.environ.get('TEST_DATA_PATH')} is not a file")
    return path


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every xdist worker of this session sees (the session's base folder)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def champion_run(shared_tmp: Path, uci_data_path: Path) -> SessionChampion:
    """The one `train --quick` of the session (tests/support/champion.py); fails with the
    job's output if training failed."""
    from devstack.ports import free_port

    run = session_champion(shared_tmp, uci_data_path, free_port())
    if run.returncode != 0:
        pytest.fail(f"the session's training run failed:\n{run.stdout}\n{run.stderr[-5000:]}")
    return run
