"""The per-group fairness alerts (deploy/prometheus/rules/fairness.yml) and dashboard panels:
pinned thresholds, exported metric names only, and a real Prometheus (Debian package, configured
and started as the embedded stack does it) that scrapes the consumer's per-group counters, as the
consumer's own GroupRates sets them from a contract training wrote, and evaluates the alerts into
pending ones for the departing groups."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.deploy.deploy_helpers import (
    REPO_ROOT,
    dashboard_targets,
    exported_metric_names,
    load_yaml,
    promql_metric_names,
)
from tests.deploy.promtool import unit_tests_on_changed_rules
from tests.deploy.test_deploy_observability import query

RULES = REPO_ROOT / "deploy" / "prometheus" / "rules" / "fairness.yml"
RULE_TESTS = REPO_ROOT / "deploy" / "prometheus" / "tests" / "fairness_test.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "dropout-consumer.json"
ALERTS = ("DropoutGroupFlaggedAboveReference", "DropoutGroupFlaggedBelowReference")
VERSION = "7"


def rules() -> dict[str, dict[str, str]]:
    return {r["alert"]: r for g in load_yaml(RULES)["groups"] for r in g["rules"]}


def test_the_alerts_compare_ratios_with_the_contracts_reference() -> None:
    found = rules()
    assert set(found) == set(ALERTS)
    for name, bound in zip(ALERTS, ("> 1.333", "< 0.75"), strict=True):
        expr = found[name]["expr"]
        assert "dropout_consumer_group_reference_flag_ratio" in expr
        assert bound in expr
        assert 'group!="unknown"' in expr  # a missing attribute is never a group
        assert "increase(dropout_consumer_group_scored_total[6h])) >= 300" in expr
        assert "dropout_consumer_model_info) == 1" in expr
        assert found[name]["for"] == "15m"
    header = RULES.read_text(encoding="utf-8").split("groups:")[0]
    for documented in ("6 h", "300", "4/3", "3/4", "15 min"):
        assert documented in header


def test_the_fairness_rules_and_panels_use_only_exported_metrics() -> None:
    known = exported_metric_names() | {"up"}
    expressions = [(name, rule["expr"]) for name, rule in rules().items()]
    expressions += [(t, e) for t, e in dashboard_targets(DASHBOARD) if "group_" in e]
    assert len(expressions) >= 4
    for where, expr in expressions:
        unknown = promql_metric_names(expr) - known
        assert not unknown, f"{where}: {sorted(unknown)} are not exported by the consumer"


def test_the_dashboard_shows_the_group_ratios_against_the_reference() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = {p["title"]: p for p in dashboard["panels"]}
    assert "Fairness" in titles
    ratio = titles["Fairness: group flag-rate ratio against the held-out reference"]
    assert "dropout_consumer_group_reference_flag_ratio" in ratio["targets"][0]["expr"]
    steps = ratio["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps][1:] == [0.75, 1.333]  # the alerts' margin, drawn


def test_the_unit_tests_catch_a_changed_margin(tmp_path: Path) -> None:
    result = unit_tests_on_changed_rules(tmp_path, RULES, RULE_TESTS, "> 1.333", "> 2")
    assert result.returncode != 0
    assert "DropoutGroupFlaggedAboveReference" in result.stdout + result.stderr


# --- a real Prometheus scraping the consumer's group counters ----------------------------------


@pytest.fixture(scope="module")
def prometheus_with_group_counters(
    tmp_path_factory: pytest.TempPathFactory, uci_data_path: Path
) -> Iterator[str]:
    """The embedded stack's Prometheus (devstack: every rules file, the stack's ports) scraping
    ConsumerMetrics that GroupRates fills from a contract with the fairness section training
    writes; after a few scrapes, every UCI student scored at enrollment, where every student of
    35 or older is flagged and nobody else is."""
    from prometheus_client import CollectorRegistry, start_http_server

    from common.attributes import ATTRIBUTE_NAMES
    from common.contract import parse_contract
    from consumer.observe.fairness import GroupRates
    from consumer.observe.metrics import ConsumerMetrics
    from devstack.ports import free_port
    from devstack.processes import ManagedProcess
    from devstack.services import prometheus_server
    from devstack.settings import StackSettings
    from tests.support.fairness import training_fairness_section, uci_students
    from tests.support.model_builder import build_artifacts

    work = tmp_path_factory.mktemp("fairness-prometheus")
    _, _, contract = build_artifacts(work / "model", uci_data_path)
    contract["fairness"] = training_fairness_section(uci_data_path)
    parsed = parse_contract(json.dumps(contract))
    assert parsed.attribute_names == list(ATTRIBUTE_NAMES)

    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    metrics.model_info.labels(model_name="student-dropout", model_version=VERSION).set(1)
    rates = GroupRates(parsed, VERSION, metrics)
    x, _ = uci_students(uci_data_path)
    rows = x.to_numpy(dtype="float64")  # 441 students of 35 or older: above the volume floor
    target_port = free_port()
    server, thread = start_http_server(target_port, addr="127.0.0.1", registry=registry)

    settings = StackSettings.on_free_ports(work / "stack")
    try:
        spec = prometheus_server(settings, [f"127.0.0.1:{target_port}"])
    except FileNotFoundError as exc:  # not installed: a failure, never a skip
        server.shutdown()
        pytest.fail(str(exc))
    process = ManagedProcess(spec, settings.logs_dir, settings.pids_dir)
    base = settings.prometheus_url
    try:
        process.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = query(base, 'count_over_time(up{job="dropout-consumer"}[1m])')
            result = answer.get("data", {}).get("result", [])
            if result and float(result[0]["value"][1]) >= 3:
                break
            time.sleep(0.5)
        else:
            pytest.fail("prometheus did not scrape the metrics endpoint within 60 s")
        old = x["Age at enrollment"].to_numpy() >= 35
        rates.add(rows, old.tolist(), ["enrollment"] * len(rows))
        time.sleep(6)  # a few scrapes and rule evaluations (every 2 s) after the batch
        yield base
    finally:
        process.stop()
        server.shutdown()
        thread.join(timeout=5)


def test_prometheus_scrapes_bounded_group_series(prometheus_with_group_counters: str) -> None:
    base = prometheus_with_group_counters
    answer = query(base, "sum by (attribute, group) (dropout_consumer_group_scored_total)")
    assert answer["status"] == "success"
    series = {(r["metric"]["attribute"], r["metric"]["group"]) for r in answer["data"]["result"]}
    ages = {group for attribute, group in series if attribute == "age_band"}
    assert ages == {"17-20", "21-24", "25-34", "35+", "unknown"}
    assert {a for a, _ in series} == {
        "gender", "age_band", "nationality", "displaced", "special_needs", "debtor",
        "scholarship_holder",
    }  # fmt: skip
    total = query(base, 'sum(dropout_consumer_group_scored_total{attribute="gender"})')
    assert float(total["data"]["result"][0]["value"][1]) == 4424
    reference = query(base, "count(dropout_consumer_group_reference_flag_ratio)")
    assert float(reference["data"]["result"][0]["value"][1]) > 40


def test_the_alert_queries_find_the_departing_groups(prometheus_with_group_counters: str) -> None:
    base = prometheus_with_group_counters
    found = {}
    for name, rule in rules().items():
        answer = query(base, rule["expr"])
        assert answer["status"] == "success", f"{name}: {answer.get('error')}"
        found[name] = {
            (r["metric"]["attribute"], r["metric"]["group"], r["metric"]["stage"])
            for r in answer["data"]["result"]
        }
        for result in answer["data"]["result"]:
            assert result["metric"]["model_version"] == VERSION
            assert result["metric"]["group"] != "unknown"
    # Only students of 35 and older were flagged: far above their reference share...
    assert ("age_band", "35+", "enrollment") in found["DropoutGroupFlaggedAboveReference"]
    # ...and every other age band far below it (nobody flagged).
    below = found["DropoutGroupFlaggedBelowReference"]
    assert {("age_band", g, "enrollment") for g in ("17-20", "21-24", "25-34")} <= below
    ratio = query(
        base,
        rules()["DropoutGroupFlaggedBelowReference"]["expr"].split("< 0.75")[0]
        + " and on () vector(1)",
    )
    values = {
        r["metric"]["group"]: float(r["value"][1])
        for r in ratio["data"]["result"]
        if r["metric"]["attribute"] == "age_band" and r["metric"]["stage"] == "enrollment"
    }
    assert values["17-20"] == 0.0
    assert np.isfinite(values["35+"])
    assert values["35+"] > 1.333


def test_the_rules_load_and_the_alerts_go_pending(prometheus_with_group_counters: str) -> None:
    base = prometheus_with_group_counters
    deadline = time.monotonic() + 20
    pending: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        answer = query(base, 'ALERTS{alertstate="pending", alertname=~"DropoutGroup.*"}')
        pending = {
            (r["metric"]["alertname"], r["metric"]["group"]) for r in answer["data"]["result"]
        }
        if ("DropoutGroupFlaggedAboveReference", "35+") in pending:
            break
        time.sleep(1)
    assert ("DropoutGroupFlaggedAboveReference", "35+") in pending
    assert ("DropoutGroupFlaggedBelowReference", "17-20") in pending
    firing = query(base, 'ALERTS{alertstate="firing", alertname=~"DropoutGroup.*"}')
    assert firing["data"]["result"] == []  # `for: 15m`: pending, not yet firing
