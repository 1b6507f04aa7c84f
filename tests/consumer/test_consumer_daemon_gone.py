"""A processor blocked inside a batch ends once its KCL daemon is gone (no orphan).

Waiting for its first model, or retrying PutRecords, the processor is inside process_records and
the daemon cannot deliver a shutdown request; after a stop the daemon exits on its own and the
processor must not outlive it: otherwise it keeps polling the registry or retrying and, once it
can, publishes a batch the shard's next owner publishes too.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import orjson
import pytest

from common.exit_codes import ExitCode
from consumer.backoff import Backoff, Retry
from consumer.intake.parent import parent_watch
from consumer.model import handoff as handoff_module
from consumer.observe.metrics import ConsumerMetrics
from consumer.output.publisher import PublishAbandonedError, Publisher, PublishError
from consumer.scoring.served_model import ServedModel
from tests.consumer.test_consumer_publisher import outputs
from tests.support.fakes import FakeKinesis, metric_value
from tests.support.harness import DEAD_LETTERS, PREDICTIONS, Harness
from tests.support.model_builder import sample_record

GOOD = orjson.dumps(sample_record(1))


def test_the_wait_for_a_model_ends_when_the_daemon_is_gone(
    metrics: ConsumerMetrics, monkeypatch: pytest.MonkeyPatch, log_lines: io.StringIO
) -> None:
    monkeypatch.setattr(handoff_module, "WAIT_FOR_MODEL_TICK_SECONDS", 0.01)
    alive = threading.Event()
    alive.set()
    h = Harness(metrics, model=None, daemon_alive=alive.is_set)
    exits: list[int] = []

    def run() -> None:
        try:
            h.batch([GOOD, b"{"])
        except SystemExit as exc:
            exits.append(int(exc.code or 0))

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while ("waiting_for_model", None) not in h.status.states and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert worker.is_alive(), "waits while the daemon runs"
    alive.clear()
    worker.join(5)
    assert not worker.is_alive()
    assert exits == [ExitCode.DAEMON_GONE]
    assert h.kinesis.calls == []
    assert h.checkpointer.calls == []
    events = [orjson.loads(line)["event"] for line in log_lines.getvalue().splitlines()]
    assert "daemon_gone_exiting_without_checkpoint" in events


def test_a_model_that_comes_while_the_daemon_runs_is_used(
    metrics: ConsumerMetrics, fake_served: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff_module, "WAIT_FOR_MODEL_TICK_SECONDS", 0.01)
    checks: list[bool] = []

    def daemon_alive() -> bool:
        checks.append(True)
        return True

    h = Harness(metrics, model=None, daemon_alive=daemon_alive)
    worker = threading.Thread(target=h.batch, args=([GOOD, b"{"],))
    worker.start()
    deadline = time.monotonic() + 5
    while len(checks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    h.holder.offer(fake_served)
    worker.join(5)
    assert not worker.is_alive()
    assert len(checks) >= 3
    assert len(h.outputs(PREDICTIONS)) == 1
    assert len(h.outputs(DEAD_LETTERS)) == 1


def test_parent_watch_sees_the_parent_go() -> None:
    """A real parent process that exits: its child is re-parented and notices."""
    child_code = (
        "import os, sys, time\n"
        "from consumer.intake.parent import parent_watch\n"
        "alive = parent_watch()\n"
        "print('watching', flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        "while alive() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('gone' if not alive() else 'still', flush=True)\n"
    )
    parent_code = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child_code!r}], stdout=sys.stdout)\n"
        "print(child.pid, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert parent.stdout is not None
    assert parent.stdin is not None
    child_pid = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "watching"
    assert parent_watch()(), "this process's own parent is alive"
    parent.stdin.close()  # the parent exits, the child stays
    parent.wait(10)
    assert parent.stdout.readline().strip() == "gone", f"child {child_pid} did not notice"
    parent.stdout.close()


def test_publisher_retries_stop_when_told_to() -> None:
    answers = iter([True, True, False])
    kinesis = FakeKinesis(always_fail_with="ProvisionedThroughputExceededException")
    sleeps: list[float] = []
    publisher = Publisher(
        kinesis,
        predictions_stream="p",
        dead_letter_stream="d",
        retry=Retry(100, Backoff(0.01, 0.01), sleep=sleeps.append),
        keep_trying=lambda: next(answers),
    )
    with pytest.raises(PublishAbandonedError, match="gave up early"):
        publisher.publish(outputs(3))
    assert len(kinesis.calls) == 3
    assert isinstance(PublishAbandonedError("p", 1, 1, "x"), PublishError)


def test_a_processor_retrying_putrecords_exits_when_the_daemon_is_gone(
    metrics: ConsumerMetrics, fake_served: ServedModel, log_lines: io.StringIO
) -> None:
    alive = iter([True, True, False])
    kinesis = FakeKinesis(always_fail_with="ProvisionedThroughputExceededException")
    h = Harness(
        metrics,
        fake_served,
        kinesis=kinesis,
        publish_attempts=100,
        keep_trying=lambda: next(alive),
    )
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD, GOOD])
    assert exited.value.code == ExitCode.DAEMON_GONE
    assert len(kinesis.calls) == 3
    assert h.checkpointer.calls == []
    events = [orjson.loads(line)["event"] for line in log_lines.getvalue().splitlines()]
    assert "daemon_gone_exiting_without_checkpoint" in events
    assert "publish_failed_exiting_without_checkpoint" not in events
    exhausted = metric_value(
        metrics,
        "dropout_consumer_publish_retries_total",
        stream="predictions",
        error_code="retry_budget_exhausted",
    )
    assert exhausted == 0


def test_while_the_daemon_lives_the_budget_of_transient_failures_still_applies(
    metrics: ConsumerMetrics, fake_served: ServedModel
) -> None:
    kinesis = FakeKinesis(always_fail_with="InternalFailure")
    h = Harness(metrics, fake_served, kinesis=kinesis, publish_attempts=3, keep_trying=lambda: True)
    with pytest.raises(SystemExit) as exited:
        h.batch([GOOD])
    assert exited.value.code == ExitCode.PUBLISH_FAILED
    assert len(kinesis.calls) == 3


class _ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_log_call_with_nowhere_to_write_does_not_raise() -> None:
    """A processor whose daemon is gone has neither the relay socket nor a readable stderr:
    its last log line must not raise (it would turn an orderly exit code into a traceback)."""
    import structlog

    from consumer.observe.logs import configure_logging

    pipe = _ClosedPipe()
    configure_logging("INFO", relay_socket=None, fallback=pipe)
    tried: list[str] = []
    original = pipe.write

    def counting(text: str) -> int:
        tried.append(text)
        return original(text)

    pipe.write = counting  # type: ignore[method-assign]
    structlog.get_logger("test").error("daemon_gone_exiting_without_checkpoint")
    # The logger did try to write the line (so the call reached the broken pipe), and the
    # BrokenPipeError stayed inside it.
    assert len(tried) == 1
    assert "daemon_gone_exiting_without_checkpoint" in tried[0]
