"""The streaming benchmarks' process sampler: it finds the worker's processes, measures them,
and a figure without samples fails the benchmark instead of passing it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from benchmarks.process_sampler import (
    DAEMON_MAIN_CLASS,
    KCL,
    PROCESSOR,
    SUPERVISOR,
    ProcessSampler,
    Reading,
    Status,
    at_most,
    cpu_percent,
    failures,
    report,
    role_of,
    summarize,
    usage_verdicts,
)


def reading(
    role: str, pid: int, rss: float = 100.0, pss: float | None = 80.0, cpu: float | None = 5.0
) -> Reading:
    return Reading(role=role, pid=pid, rss_mb=rss, pss_mb=pss, cpu_pct=cpu)


def full_round(cpu: float | None = 5.0, processors: int = 4, rss: float = 300.0) -> list[Reading]:
    return [
        reading(SUPERVISOR, 1, rss=45.0, pss=30.0, cpu=cpu),
        reading(KCL, 2, rss=200.0, pss=190.0, cpu=cpu),
        *(reading(PROCESSOR, 10 + i, rss=rss, pss=225.0, cpu=cpu) for i in range(processors)),
    ]


# --- finding the processes ---------------------------------------------------------------


def test_roles_come_from_the_command_lines_of_the_worker_tree() -> None:
    java = ["java", "-cp", "jars/*", DAEMON_MAIN_CLASS, "--properties-file", "kcl.properties"]
    processor = ["/some/venv/bin/python", "-m", "consumer", "process"]
    assert role_of(["python", "-m", "consumer", "run"], 7, root_pid=7) == SUPERVISOR
    assert role_of(java, 8, root_pid=7) == KCL
    assert role_of(processor, 9, root_pid=7) == PROCESSOR
    # Neither a shell in between, nor the supervisor's command under another pid, nor a
    # processor-looking word inside some other argument counts.
    assert role_of(["/bin/sh", "-c", "python -m consumer process"], 10, root_pid=7) is None
    assert role_of(["python", "-m", "consumer", "run"], 11, root_pid=7) is None
    assert role_of(["python", "-m", "consumer", "score"], 12, root_pid=7) is None


def test_cpu_needs_two_readings_of_the_same_process() -> None:
    assert cpu_percent(None, (10.0, 3.0)) is None
    assert cpu_percent((10.0, 3.0), (12.0, 4.0)) == pytest.approx(50.0)
    assert cpu_percent((10.0, 3.0), (10.0, 3.5)) is None  # no wall time passed
    assert cpu_percent((10.0, 3.0), (11.0, 2.0)) == 0.0  # never negative (a reused pid)


# --- summaries ---------------------------------------------------------------------------


def test_summary_takes_maxima_per_process_and_sums_cpu_per_round() -> None:
    rounds = [
        full_round(cpu=None),
        full_round(cpu=10.0),
        [*full_round(cpu=20.0)[:-1], reading(PROCESSOR, 13, rss=330.0, pss=240.0, cpu=20.0)],
    ]
    figures = summarize(rounds)
    processors = figures[PROCESSOR]
    assert processors.rounds == 3
    assert processors.processes == 4
    assert processors.rss_max_each_mb == 330.0
    assert processors.pss_max_each_mb == 240.0
    # 4 processors at 10 % then at 20 %; the first round has no CPU figure yet.
    assert processors.cpu_mean_pct == pytest.approx((40.0 + 80.0) / 2)
    assert figures[KCL].rss_max_each_mb == 200.0
    assert figures[SUPERVISOR].pss_max_each_mb == 30.0


def test_a_round_where_a_new_processor_has_no_cpu_yet_is_left_out_of_the_mean() -> None:
    late = [*full_round(cpu=10.0, processors=3), reading(PROCESSOR, 99, cpu=None)]
    figures = summarize([full_round(cpu=10.0, processors=3), late])
    assert figures[PROCESSOR].cpu_mean_pct == pytest.approx(30.0)
    assert figures[PROCESSOR].processes == 4


def test_no_rounds_give_no_figures_not_zeros() -> None:
    for rounds in ([], [[]], [[reading(SUPERVISOR, 1)]]):
        processors = summarize(rounds)[PROCESSOR]
        assert processors.rounds == 0
        assert processors.rss_max_each_mb is None
        assert processors.pss_max_each_mb is None
        assert processors.cpu_mean_pct is None


# --- verdicts ----------------------------------------------------------------------------


def test_a_goal_without_a_figure_is_not_met() -> None:
    assert at_most("RSS", None, 350).status is Status.NO_SAMPLES
    assert not Status.NO_SAMPLES.passed
    assert at_most("RSS", 349.9, 350).status is Status.MET
    assert at_most("RSS", 350.1, 350).status is Status.MISSED
    assert at_most("RSS", 0.0, 350).status is Status.MET  # a real zero is a figure


def test_the_run_that_never_sampled_fails_the_benchmark() -> None:
    """The regression: a sampler that never ran reported 0 MB and the goal was judged MET."""
    verdicts = usage_verdicts(summarize([]), expected_processors=4, rss_goal_mb=350)
    failed = failures(verdicts)
    assert failed
    assert all(v.status is Status.NO_SAMPLES for v in failed)
    names = {v.name for v in failed}
    assert "RSS per shard processor (max)" in names
    assert "KCL daemon CPU (mean)" in names
    assert not any(v.status is Status.MET for v in verdicts)
    assert "BENCHMARK FAILED" in report(verdicts)


def test_a_fully_sampled_worker_within_the_goal_passes_and_reports_pss() -> None:
    verdicts = usage_verdicts(
        summarize([full_round(cpu=None), full_round(cpu=7.0)]),
        expected_processors=4,
        rss_goal_mb=350,
    )
    assert failures(verdicts) == []
    by_name = {v.name: v for v in verdicts}
    assert by_name["RSS per shard processor (max)"].status is Status.MET
    assert by_name["shard processors PSS (max per process)"].value == 225.0
    assert by_name["KCL daemon PSS (max)"].value == 190.0
    assert "BENCHMARK FAILED" not in report(verdicts)


def test_over_the_memory_goal_is_missed() -> None:
    verdicts = usage_verdicts(
        summarize([full_round(cpu=None, rss=400.0), full_round(cpu=7.0, rss=400.0)]),
        expected_processors=4,
        rss_goal_mb=350,
    )
    [failed] = failures(verdicts)
    assert failed.status is Status.MISSED
    assert failed.value == 400.0


def test_missing_pss_or_a_single_round_fail_the_benchmark() -> None:
    no_pss = [[reading(r.role, r.pid, pss=None) for r in full_round()] for _ in range(2)]
    failed = failures(usage_verdicts(summarize(no_pss), expected_processors=4, rss_goal_mb=350))
    assert {v.name for v in failed} == {
        "shard processors PSS (max per process)",
        "KCL daemon PSS (max)",
        "supervisor PSS (max)",
    }
    one_round = summarize([full_round(cpu=None)])
    failed = failures(usage_verdicts(one_round, expected_processors=4, rss_goal_mb=350))
    assert {v.name for v in failed} == {
        "shard processors CPU (mean, together)",
        "KCL daemon CPU (mean)",
        "supervisor CPU (mean)",
    }


def test_fewer_processors_than_shards_is_an_incomplete_measurement() -> None:
    rounds = [full_round(cpu=None, processors=2), full_round(processors=2)]
    [failed] = failures(usage_verdicts(summarize(rounds), expected_processors=4, rss_goal_mb=350))
    assert failed.name == "shard processors sampled"
    assert failed.value == 2.0
    assert failed.status is Status.NO_SAMPLES


# --- the sampler on a real process tree ----------------------------------------------------

# A stand-in worker with the real tree's shape and command lines: supervisor -> "daemon" (its
# command line names the MultiLangDaemon class) -> two "shard processors" (`-m consumer
# process` in their argv) that hold memory and burn CPU. Nothing here imports the consumer.
_PROCESSOR = "x = bytearray(64 * 2**20)\nwhile True:\n    sum(range(10_000))\n"
_DAEMON = textwrap.dedent(
    f"""
    import subprocess, sys, time
    kids = [subprocess.Popen([sys.executable, "-c", {_PROCESSOR!r}, "-m", "consumer", "process"])
            for _ in range(2)]
    time.sleep(600)
    """
)
_SUPERVISOR = textwrap.dedent(
    f"""
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", {_DAEMON!r}, {DAEMON_MAIN_CLASS!r}])
    time.sleep(600)
    """
)


@pytest.fixture
def fake_worker() -> Iterator[subprocess.Popen[bytes]]:
    root = subprocess.Popen([sys.executable, "-c", _SUPERVISOR], start_new_session=True)
    try:
        yield root
    finally:
        os.killpg(root.pid, signal.SIGKILL)
        root.wait(timeout=10)


def test_the_sampler_finds_and_measures_the_whole_tree(
    fake_worker: subprocess.Popen[bytes],
) -> None:
    sampler = ProcessSampler(fake_worker.pid, interval=0.3)
    deadline = time.monotonic() + 20
    while len([r for r in sampler.sample() if r.role == PROCESSOR]) < 2:
        assert time.monotonic() < deadline, "the stand-in processors did not start"
        time.sleep(0.2)
    with sampler:
        time.sleep(1.5)
    figures = sampler.summary()
    assert figures[PROCESSOR].processes == 2
    assert figures[KCL].processes == 1
    assert figures[SUPERVISOR].processes == 1
    processors = figures[PROCESSOR]
    assert processors.rss_max_each_mb is not None
    assert processors.rss_max_each_mb > 64  # the 64 MB each one holds
    assert processors.pss_max_each_mb is not None
    assert 0 < processors.pss_max_each_mb <= processors.rss_max_each_mb
    assert processors.cpu_mean_pct is not None
    assert processors.cpu_mean_pct > 20  # two busy loops, even on a loaded machine
    verdicts = usage_verdicts(figures, expected_processors=2, rss_goal_mb=350)
    assert failures(verdicts) == [], report(verdicts)


def test_a_worker_that_is_gone_gives_no_samples_and_fails() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    sampler = ProcessSampler(gone.pid, interval=0.1)
    with sampler:
        time.sleep(0.3)
    assert sampler.rounds
    assert sampler.errors
    verdicts = usage_verdicts(sampler.summary(), expected_processors=4, rss_goal_mb=350)
    assert failures(verdicts)
    assert "BENCHMARK FAILED" in report(verdicts)
