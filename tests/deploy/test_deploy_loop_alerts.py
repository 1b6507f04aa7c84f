"""The learning loop's alerts on real parts (marker `integration`): the embedded stack's
Pushgateway (Debian package prometheus-pushgateway) and Prometheus (Debian package prometheus),
configured as devstack configures them (honor_labels, every rules file), a real monitor report
(training/loop/monitor.py on captures and outcomes written as the consumer and the importer
write them) pushed by the monitor's own `push_to_gateway`, and the loop's alert expressions
evaluated by that Prometheus. Both binaries must be installed: a missing one fails the test
(`make setup` installs them as root), it is never skipped.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devstack.processes import ManagedProcess
from devstack.services import prometheus_server, pushgateway_server
from devstack.settings import StackSettings
from tests.deploy.deploy_helpers import REPO_ROOT, load_yaml

pytestmark = pytest.mark.integration

LOOP_RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "loop.yml"
MODEL = "student-dropout"
TODAY = date(2026, 12, 10)


@dataclass(frozen=True)
class Stack:
    prometheus: str
    pushgateway: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = StackSettings.on_free_ports(tmp_path_factory.mktemp("loop-alerts"))
    started: list[ManagedProcess] = []
    try:
        for make in (pushgateway_server, lambda s: prometheus_server(s, [])):
            try:
                spec = make(settings)
            except FileNotFoundError as exc:
                pytest.fail(str(exc))
            started.append(ManagedProcess(spec, settings.logs_dir, settings.pids_dir).start())
        yield Stack(settings.prometheus_url, settings.pushgateway_url)
    finally:
        for process in reversed(started):
            process.stop()


def query(stack: Stack, expr: str) -> list[dict[str, Any]]:
    url = f"{stack.prometheus}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def api(stack: Stack, path: str) -> Any:
    with urllib.request.urlopen(f"{stack.prometheus}{path}", timeout=10) as response:
        return json.load(response)["data"]


def wait_for(stack: Stack, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = query(stack, expr)
        if result:
            return result
        assert time.monotonic() < deadline, f"no data for {expr} within {timeout:.0f} s"
        time.sleep(0.5)


def rules() -> dict[str, str]:
    return {
        rule["alert"]: rule["expr"]
        for group in load_yaml(LOOP_RULES)["groups"]
        for rule in group["rules"]
    }


def report(store_root: Path, *, pending_spread: float) -> Any:
    """A real monitor report: version 3 (held-out ROC-AUC 0.88) scored 200 students on
    2026-10-01; 120 have an outcome (weakly related to the probability: realized ROC-AUC well
    below 0.88, on a sample that is not small), imported 223 days before TODAY; 80 await one,
    their probabilities spread by `pending_spread` around 0.5 (the narrower, the lower the
    estimated ROC-AUC)."""
    from common.object_store import LocalStore
    from tests.training.loop.helpers import outcome_csv, put_batch, student_line
    from training.loop.monitor import monitor

    store = LocalStore(store_root)
    rng = np.random.default_rng(11)
    lines, outcomes = [], []
    for student in range(1, 201):
        if student <= 120:
            probability = float(rng.uniform(0.05, 0.95))
            truth = rng.random() < 0.5 + 0.3 * (probability - 0.5)
            outcomes.append(
                (student, "Dropout" if truth else "Graduate", "2026-04-30", "registrar-2026-T0")
            )
        else:
            probability = float(np.clip(0.5 + pending_spread * rng.uniform(-1, 1), 0.01, 0.99))
        lines.append(student_line(student, probability, day="2026-03-01"))
    put_batch(store, lines)
    store.put("outcomes/registrar-2026-T0.csv", outcome_csv(outcomes))
    imported = datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp()
    os.utime(store.root / "outcomes" / "registrar-2026-T0.csv", (imported, imported))
    now = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
    return monitor(
        store, reference_auc_by_version={"3": 0.88}, today=TODAY, now=now, n_bootstrap=50
    )


def test_a_pushed_monitor_report_reaches_prometheus_and_the_loop_alerts_see_it(
    stack: Stack, tmp_path: Path
) -> None:
    from training.loop.publish import push_to_gateway

    first = report(tmp_path / "first", pending_spread=0.45)
    realized = next(r for r in first.realized if r.version == "3" and r.stage == "all")
    assert not realized.small_sample
    assert realized.roc_auc.value < 0.83, "the scenario needs a realized figure below 0.88 - 0.05"
    assert first.days_since_last_outcome_import == 223
    push_to_gateway(stack.pushgateway, first, MODEL)

    # honor_labels: the pushed job and grouping key stay on the scraped series.
    selector = f'job="dropout-loop-monitor", model="{MODEL}"'
    held_out = wait_for(stack, f'dropout_loop_roc_auc{{{selector}, kind="held_out"}}')
    assert [float(s["value"][1]) for s in held_out] == [0.88]
    (scraped,) = wait_for(
        stack, f'dropout_loop_roc_auc{{{selector}, kind="realized", stage="all", version="3"}}'
    )
    assert float(scraped["value"][1]) == pytest.approx(realized.roc_auc.value)
    estimated_first = next(e for e in first.estimated if e.version == "3" and e.stage == "all")
    wait_for(
        stack,
        f'dropout_loop_roc_auc{{{selector}, kind="estimated", stage="all", version="3"}}'
        f" == {estimated_first.roc_auc.value!r}",
    )

    expressions = rules()
    (firing,) = query(stack, expressions["DropoutLoopRealizedAucBelowHeldOut"])
    assert firing["metric"] == {"model": MODEL, "version": "3"}
    assert float(firing["value"][1]) == pytest.approx(realized.roc_auc.value)
    (overdue,) = query(stack, expressions["DropoutLoopOutcomesOverdue"])
    assert overdue["metric"] == {"model": MODEL}
    assert float(overdue["value"][1]) == 223
    # Nothing fell yet, and the push is fresh.
    assert query(stack, expressions["DropoutLoopEstimatedAucFalling"]) == []
    assert query(stack, expressions["DropoutLoopMonitorStale"]) == []
    (age,) = query(stack, 'time() - max by (model) (push_time_seconds{job="dropout-loop-monitor"})')
    assert 0 <= float(age["value"][1]) < 120

    # A later run: the pending students are ones the model separates worse.
    second = report(tmp_path / "second", pending_spread=0.05)
    estimated_second = next(e for e in second.estimated if e.version == "3" and e.stage == "all")
    drop = estimated_first.roc_auc.value - estimated_second.roc_auc.value
    assert drop > 0.03, "the scenario needs a fall of more than 0.03"
    assert not estimated_second.small_sample
    push_to_gateway(stack.pushgateway, second, MODEL)
    wait_for(
        stack,
        f'dropout_loop_roc_auc{{{selector}, kind="estimated", stage="all", version="3"}}'
        f" == {estimated_second.roc_auc.value!r}",
    )
    (falling,) = query(stack, expressions["DropoutLoopEstimatedAucFalling"])
    assert falling["metric"]["version"] == "3"
    assert float(falling["value"][1]) == pytest.approx(drop)

    # The rules themselves are loaded and evaluated: the conditions that hold are pending
    # (each has a `for` longer than this test).
    loaded = {
        rule["name"]: rule
        for group in api(stack, "/api/v1/rules")["groups"]
        for rule in group["rules"]
        if group["file"].endswith("loop.yml")
    }
    assert set(loaded) == set(expressions)
    deadline = time.monotonic() + 30
    while True:
        pending = {
            alert["labels"]["alertname"]
            for alert in api(stack, "/api/v1/alerts")["alerts"]
            if alert["labels"]["alertname"].startswith("DropoutLoop")
        }
        expected = {
            "DropoutLoopRealizedAucBelowHeldOut",
            "DropoutLoopOutcomesOverdue",
            "DropoutLoopEstimatedAucFalling",
        }
        if pending == expected or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert pending == expected
