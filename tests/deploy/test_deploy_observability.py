"""Prometheus alert rules (promtool check + unit tests), the compose scrape config, and the
Grafana dashboard: metric names, the topics it must show, and every query run by a real
Prometheus against a scrape of the consumer's real metric classes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deploy_helpers import (
    PUSHGATEWAY_SERIES,
    REPO_ROOT,
    dashboard_targets,
    exported_metric_names,
    load_yaml,
    loop_metric_names,
    promql_metric_names,
)
from tests.deploy.promtool import run_promtool, unit_tests_on_changed_rules

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
TESTS_DIR = PROMETHEUS_DIR / "tests"
# The consumer's rules; the learning loop and fairness have their own files beside it.
ALERTS = RULES_DIR / "consumer.yml"
ALERT_TESTS = TESTS_DIR / "consumer_test.yml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "dropout-consumer.json"
GRAFANA_PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def alert_rules(path: Path = ALERTS) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def test_every_rule_file_has_its_unit_tests() -> None:
    assert ALERTS in rule_files()
    for rules in rule_files():
        tests = TESTS_DIR / f"{rules.stem}_test.yml"
        assert tests.exists(), f"{rules.name} has no promtool unit tests ({tests.name})"
        assert f"../rules/{rules.name}" in tests.read_text(encoding="utf-8")
        tested = tests.read_text(encoding="utf-8")
        for rule in alert_rules(rules):
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
            assert rule["annotations"]["description"]
            assert f"alertname: {rule['alert']}" in tested, f"{rule['alert']} has no unit test"


@pytest.mark.parametrize("rules", rule_files(), ids=lambda path: path.name)
def test_promtool_check_rules(rules: Path) -> None:
    result = run_promtool("check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("rules", rule_files(), ids=lambda path: path.name)
def test_promtool_unit_tests_of_the_alerts(rules: Path) -> None:
    tests = TESTS_DIR / f"{rules.stem}_test.yml"
    result = run_promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests pin the documented thresholds: moving the drift threshold breaks them."""
    result = unit_tests_on_changed_rules(
        tmp_path,
        ALERTS,
        ALERT_TESTS,
        "(dropout_consumer_feature_psi) > 0.2",
        "(dropout_consumer_feature_psi) > 0.5",
    )
    assert result.returncode != 0
    assert "DropoutFeatureDrift" in result.stdout + result.stderr


def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    config = (PROMETHEUS_DIR / "prometheus.yml").read_text(encoding="utf-8")
    assert "/etc/prometheus/rules/*.yml" in config
    (tmp_path / "prometheus.yml").write_text(
        config.replace("/etc/prometheus/rules/", f"{RULES_DIR}/"), encoding="utf-8"
    )
    result = run_promtool("check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_issue_4_asks_for() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    down = rules["DropoutConsumerDown"]["expr"]
    assert 'up{job="dropout-consumer"} == 0' in down
    assert 'absent(up{job="dropout-consumer"})' in down
    assert (
        "dropout_consumer_behind_latest_seconds" in rules["DropoutConsumerIteratorAgeHigh"]["expr"]
    )
    assert (
        "dropout_consumer_dead_letters_total" in rules["DropoutConsumerDeadLetterRateHigh"]["expr"]
    )
    assert 'outcome!="success"' in rules["DropoutConsumerModelReloadFailed"]["expr"]
    assert rules["DropoutFeatureDrift"]["expr"].endswith("> 0.2"), "drift threshold 0.2 by default"
    assert "0.2" in ALERTS.read_text(encoding="utf-8").split("groups:")[0], (
        "the threshold is documented"
    )


def test_alerts_and_dashboard_use_only_exported_metrics() -> None:
    """Every series an alert (of any rules file) or a dashboard query names is one the code
    exports: the consumer's metric classes, the learning loop's monitor report as it is pushed,
    the Pushgateway's own push times, or Prometheus' `up`."""
    consumer = exported_metric_names()
    loop = loop_metric_names()
    assert "dropout_loop_roc_auc" in loop
    assert "dropout_loop_days_since_last_outcome_import" in loop
    known = consumer | loop | PUSHGATEWAY_SERIES | {"up"}
    expressions = [
        (f"{rules.name}: alert {r['alert']}", r["expr"])
        for rules in rule_files()
        for r in alert_rules(rules)
    ] + dashboard_targets(DASHBOARD)
    for where, expr in expressions:
        unknown = promql_metric_names(expr) - known
        assert not unknown, (
            f"{where}: {sorted(unknown)} are defined neither in consumer/observe/metrics.py nor "
            "by the learning loop's monitor (training/loop/monitor.py to_metrics)"
        )
    loop_alerts = alert_rules(RULES_DIR / "loop.yml")
    assert loop_alerts
    for rule in loop_alerts:
        assert promql_metric_names(rule["expr"]) & (loop | PUSHGATEWAY_SERIES), rule["alert"]


def test_the_loop_alerts_issue_11_asks_for() -> None:
    """Realized below the version's held-out figure once the sample is not small, outcomes not
    imported for too long, the estimated figure falling; thresholds documented in the header."""
    rules = {rule["alert"]: rule for rule in alert_rules(RULES_DIR / "loop.yml")}
    realized = rules["DropoutLoopRealizedAucBelowHeldOut"]["expr"]
    assert 'kind="realized"' in realized
    assert 'kind="held_out"' in realized
    assert "dropout_loop_small_sample" in realized
    assert "- 0.05" in realized
    overdue = rules["DropoutLoopOutcomesOverdue"]["expr"]
    assert overdue.endswith("dropout_loop_days_since_last_outcome_import) > 200")
    falling = rules["DropoutLoopEstimatedAucFalling"]["expr"]
    assert 'kind="estimated"' in falling
    assert "max_over_time" in falling
    assert "> 0.03" in falling
    assert (
        'push_time_seconds{job="dropout-loop-monitor"}' in rules["DropoutLoopMonitorStale"]["expr"]
    )
    header = (RULES_DIR / "loop.yml").read_text(encoding="utf-8").split("groups:")[0]
    for threshold in ("0.05", "200 days", "0.03", "14 days", "8 days", "honor_labels"):
        assert threshold in header, threshold
    from training.loop.publish import PUSH_JOB

    assert PUSH_JOB == "dropout-loop-monitor"


def test_every_prometheus_config_scrapes_the_pushgateway_with_honor_labels(
    tmp_path: Path,
) -> None:
    """Compose's config and the embedded stack's (devstack writes it): the pushed job label
    stays, or every loop alert that names the job would see `pushgateway` instead."""
    compose = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [j for j in compose["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert job["honor_labels"] is True
    assert job["static_configs"][0]["targets"] == ["pushgateway:9091"]
    from devstack.services import prometheus_config
    from devstack.settings import StackSettings

    settings = StackSettings(stack_dir=tmp_path, pushgateway_port=29091)
    config = load_yaml_text(prometheus_config(settings, ["127.0.0.1:29108"]))
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert job["honor_labels"] is True
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:29091"]
    (tmp_path / "prometheus.yml").write_text(
        prometheus_config(settings, ["127.0.0.1:29108"]), encoding="utf-8"
    )
    result = run_promtool("check", "config", tmp_path / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def load_yaml_text(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def test_metric_name_extraction_is_not_blind() -> None:
    names = promql_metric_names(
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="y"}[5m])))'
        " / on() group_left b_total or vector(0)"
    )
    assert names == {"a_bucket", "b_total"}


def test_dashboard_shows_what_issue_4_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "dropout-consumer"
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    topics = (
        "throughput",
        "latency",
        "lag per shard",
        "dead letters by reason",
        "model version over time",
        "reloads",
        "probability distribution",
        "population stability index",
        "missing",
    )
    for topic in topics:
        assert topic in titles, topic
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p.get("targets") for p in panels)
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource"}
    for title, expr in dashboard_targets(DASHBOARD):
        # Plain PromQL: the queries run as they are against Prometheus (integration tests too).
        assert "$" not in expr, f"{title}: Grafana variables in {expr}"
    provisioning = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")
    assert provisioning["datasources"][0]["uid"] == "prometheus"
    assert provisioning["datasources"][0]["url"] == "http://prometheus:9090"
    providers = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "dropout.yml")["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


# --- every query against a real Prometheus ---------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:  # 400: a syntax error, reported in the body
        return dict(json.load(error))


@pytest.fixture(scope="module")
def prometheus_scraping_a_consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus (Debian package) on loopback scraping an endpoint that serves the
    consumer's own ConsumerMetrics, set as a consumer that scored some records would set them."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed (Debian package prometheus; make setup installs it)"
        )
    from prometheus_client import CollectorRegistry, start_http_server

    from consumer.observe.metrics import ConsumerMetrics

    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    shard = "shardId-000000000000"
    metrics.records_received.labels(shard_id=shard).inc(100)
    metrics.predictions.labels(decision="at_risk", model_version="3").inc(30)
    metrics.predictions.labels(decision="not_at_risk", model_version="3").inc(68)
    metrics.dead_letters.labels(reason="invalid_json").inc(2)
    metrics.published_records.labels(stream="predictions").inc(98)
    metrics.published_records.labels(stream="dead_letters").inc(2)
    metrics.checkpoints.labels(outcome="success").inc(4)
    metrics.model_reloads.labels(outcome="success").inc()
    for age in (0.3, 0.6, 1.2):
        metrics.record_age.observe(age)
    metrics.batch_size.observe(100)
    metrics.batch_duration.observe(0.2)
    metrics.scoring_duration.observe(0.01)
    metrics.probability.observe(0.31)
    metrics.behind_latest.labels(shard_id=shard).set(0)
    metrics.model_info.labels(model_name="student-dropout", model_version="3").set(1)
    metrics.processor_ready.labels(shard_id=shard).set(1)
    metrics.feature_psi.labels(attribute="GDP").set(0.04)
    metrics.attribute_missing_ratio.labels(attribute="GDP").set(0.0)
    metrics.daemon_up.set(1)
    for group, flagged in (("female", 10), ("male", 20)):  # the fairness panels' series
        labels = {"attribute": "gender", "group": group, "stage": "enrollment"}
        metrics.groups.scored.labels(**labels, model_version="3").inc(50)
        metrics.groups.flagged.labels(**labels, model_version="3").inc(flagged)
        metrics.groups.reference_flag_rate.labels(**labels, model_version="3").set(0.3)
        metrics.groups.reference_flag_ratio.labels(**labels, model_version="3").set(1.0)
    target_port = free_port()
    server, thread = start_http_server(target_port, addr="127.0.0.1", registry=registry)

    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    (root / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        "  - job_name: dropout-consumer\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail("prometheus exited:\n" + (root / "prometheus.log").read_text()[-3000:])
            try:
                samples = query(base, 'count_over_time(up{job="dropout-consumer"}[1m])')
                result = samples.get("data", {}).get("result", [])
                if result and float(result[0]["value"][1]) >= 4:
                    metrics.records_received.labels(shard_id=shard).inc(50)
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("prometheus did not scrape the metrics endpoint within 60 s")
        time.sleep(2.5)  # a few more scrapes after the increment: rates above zero
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        server.shutdown()
        thread.join(timeout=5)


def test_every_dashboard_query_returns_data(prometheus_scraping_a_consumer: str) -> None:
    empty = []
    for title, expr in dashboard_targets(DASHBOARD):
        answer = query(prometheus_scraping_a_consumer, expr)
        assert answer["status"] == "success", f"{title}: {expr}: {answer.get('error')}"
        if not answer["data"]["result"]:
            empty.append(f"{title}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_every_alert_expression_runs_and_rules_load(prometheus_scraping_a_consumer: str) -> None:
    for rule in alert_rules():
        answer = query(prometheus_scraping_a_consumer, rule["expr"])
        assert answer["status"] == "success", f"{rule['alert']}: {answer.get('error')}"
    with urllib.request.urlopen(
        f"{prometheus_scraping_a_consumer}/api/v1/rules", timeout=10
    ) as response:
        groups = json.load(response)["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert loaded == {rule["alert"] for rule in alert_rules()}
    active = query(prometheus_scraping_a_consumer, "ALERTS")["data"]["result"]
    assert not active, f"a healthy consumer has pending or firing alerts: {active}"
