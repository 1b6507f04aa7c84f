"""benchmarks/compare.py: how each commit's benchmark is started, how its figures are read from
what it printed, and what counts as worse."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.compare import (
    FIGURES,
    Figure,
    Row,
    Tree,
    latency_figures,
    reload_figures,
    scoring_figures,
)


def old_latency_row(name: str, idle: int, p50: float, p99: float, rss: float) -> str:
    """A row exactly as benchmarks/stream_latency.py printed it at 183baf9."""
    return (
        f"{name + ' ' + str(idle) + ' ms':<38}{4000:>8}"
        f"{p50:>9.0f}{p50 * 1.5:>9.0f}{p99:>9.0f}{p99 * 1.2:>9.0f}"
        f"{rss:>13.0f}{12.5:>12.1f}"
    )


def test_the_old_latency_table_is_read() -> None:
    stdout = "\n".join(
        [
            "put->prediction latency at 200 records/s over 4 shards (embedded stack)",
            "run                                    records   p50 ms   p90 ms   p99 ms ...",
            old_latency_row("baseline (KCL default polling)", 1000, 650, 1320, 301),
            old_latency_row("tuned", 250, 280, 640, 299),
            "goals: p50 <= 1000 ms, p99 <= 2500 ms, RSS per shard processor <= 350 MB -> MET",
        ]
    )
    # The old runs had no capture: each is the before side of the later runs, with capture
    # off (judged) and on (shown).
    assert latency_figures(stdout, None) == {
        "KCL default + capture: p50 ms": 650.0,
        "KCL default + capture: p99 ms": 1320.0,
        "tuned: p50 ms": 280.0,
        "tuned: p99 ms": 640.0,
        "tuned: RSS per shard processor MB": 299.0,
        "tuned + capture: p50 ms": 280.0,
        "tuned + capture: p99 ms": 640.0,
        "tuned + capture: RSS per shard processor MB": 299.0,
    }


def test_the_new_latency_json_is_read() -> None:
    def run(name: str, p50: float | None, rss: float | None) -> dict[str, object]:
        return {
            "name": name,
            "p50_ms": p50,
            "p99_ms": None if p50 is None else p50 * 2,
            "usage": {"processor": {"rss_max_each_mb": rss}},
        }

    runs = [run("baseline", 700, 320), run("tuned", 300, 322), run("tuned-no-capture", 290, None)]
    text = json.dumps({"runs": runs})
    figures = latency_figures("", text)
    # Like for like with 183baf9 (no capture then): the run with capture off.
    assert figures["tuned: p50 ms"] == 290.0
    assert figures["tuned: p99 ms"] == 580.0
    assert figures["tuned + capture: p50 ms"] == 300.0
    assert figures["tuned + capture: RSS per shard processor MB"] == 322.0
    assert figures["KCL default + capture: p50 ms"] == 700.0
    assert "tuned: RSS per shard processor MB" not in figures  # no samples: no figure
    # A run without latencies gives no figure rather than a zero.
    assert latency_figures("", json.dumps({"runs": [run("tuned", None, None)]})) == {}


def test_nothing_recognisable_gives_no_figures() -> None:
    assert latency_figures("Traceback (most recent call last): ...", None) == {}
    assert reload_figures("stack up; training --quick for the champion ...") == {}


def test_the_reload_table_is_read() -> None:
    stdout = "\n".join(
        [
            "hot reload, poll interval 2.0 s, 3 alias moves",
            f"{'':<44}{'seconds':>10}",
            f"{'baseline: poll interval + cold offline load':<44}{4.21:>10.2f}",
            *(
                f"{f'move {i}: alias set -> first new-version output':<44}{s:>10.2f}"
                for i, s in enumerate((0.61, 1.62, 1.1), start=1)
            ),
        ]
    )
    assert reload_figures(stdout) == {
        "reload: worst s": 1.62,
        "reload: median s": 1.1,
        "reload: poll + cold load s": 4.21,
    }


def test_scoring_judges_the_fastest_run_and_shows_the_median() -> None:
    def run(rate_500: float, best_500: float) -> str:
        def row(model: str, size: int, rate: float, best: float) -> dict[str, object]:
            return {
                "model": model,
                "batch_size": size,
                "records_per_second": rate,
                "best_records_per_second": best,
            }

        return json.dumps(
            [
                row("test model", 500, rate_500, best_500),
                row("test model", 1000, 30000.0, 31000.0),
                row("student-dropout v1", 500, 1.0, 2.0),  # the real model is not compared
            ]
        )

    figures = scoring_figures([run(20000.0, 26000.0), run(10000.0, 24000.0), run(23000.0, 25000.0)])
    assert figures == {
        "scoring best records/s, batch 500": 26000.0,
        "scoring best records/s, batch 1000": 31000.0,
        "scoring median records/s, batch 500": 20000.0,
        "scoring median records/s, batch 1000": 30000.0,
    }


THROUGHPUT = Figure("scoring best records/s, batch 500", "rec/s", True, 10.0)
LATENCY = Figure("tuned: p50 ms", "ms", False, 25.0)


@pytest.mark.parametrize(
    ("figure", "before", "after", "verdict"),
    [
        (THROUGHPUT, 20000.0, 18500.0, "same"),  # -7.5 %: within the band
        (THROUGHPUT, 20000.0, 17000.0, "WORSE"),
        (THROUGHPUT, 20000.0, 25000.0, "better"),
        (LATENCY, 400.0, 480.0, "same"),
        (LATENCY, 400.0, 520.0, "WORSE"),  # latency: higher is worse
        (LATENCY, 400.0, 200.0, "better"),
        (LATENCY, None, 200.0, "NOT MEASURED"),
        (LATENCY, 400.0, None, "NOT MEASURED"),
    ],
)
def test_verdicts(figure: Figure, before: float | None, after: float | None, verdict: str) -> None:
    assert Row(figure, before, after).verdict == verdict


def test_what_did_not_exist_before_is_shown_not_judged() -> None:
    with_capture = next(f for f in FIGURES if f.name == "tuned + capture: p50 ms")
    assert not with_capture.judged
    assert Row(with_capture, 300.0, 900.0).verdict == "shown"
    assert Row(with_capture, 300.0, None).verdict == "NOT MEASURED"


def test_the_invocation_follows_each_commits_layout(tmp_path: Path) -> None:
    (tmp_path / "benchmarks").mkdir()
    scripts = Tree("before", "183baf9", "0" * 40, tmp_path)
    assert scripts.command("hot_reload", "--moves", "3") == [
        sys.executable,
        str(tmp_path / "benchmarks" / "hot_reload.py"),
        "--moves",
        "3",
    ]
    (tmp_path / "benchmarks" / "__init__.py").write_text("")
    modules = Tree("after", "HEAD", "1" * 40, tmp_path)
    assert modules.command("hot_reload") == [sys.executable, "-m", "benchmarks.hot_reload"]
