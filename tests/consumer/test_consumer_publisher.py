"""PutRecords publishing: chunking, partial failures, throttling as back-pressure, permanent
refusals, and the budget of transient failures."""

from __future__ import annotations

import random
from collections.abc import Callable

import boto3
import orjson
import pytest
from botocore.exceptions import EndpointConnectionError

from consumer.backoff import Backoff, Retry
from consumer.config import ConsumerSettings
from consumer.observe.metrics import ConsumerMetrics
from consumer.output.errors import ErrorClass, classify
from consumer.output.kinesis import publishing_client
from consumer.output.publisher import (
    MAX_BYTES_PER_CALL,
    LeaseLostError,
    OutputRefusedError,
    PublishAbandonedError,
    Publisher,
    PublishError,
)
from consumer.records import OutputKind, OutputRecord, SourcePosition
from tests.support.fakes import FakeKinesis, client_error, metric_value

PREDICTIONS = "predictions-stream"
DEAD_LETTERS = "dead-letter-stream"


def outputs(
    count: int, kind: OutputKind = OutputKind.PREDICTION, size: int = 10
) -> list[OutputRecord]:
    return [
        OutputRecord(
            kind=kind,
            data=orjson.dumps({"i": i, "pad": "x" * size}),
            partition_key=str(i),
            position=SourcePosition("shard", str(i)),
        )
        for i in range(count)
    ]


class FakeClock:
    """A clock that moves only when the publisher sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def publisher(
    kinesis: object,
    metrics: ConsumerMetrics | None,
    sleeps: list[float],
    attempts: int = 5,
    sleep: Callable[[float], None] | None = None,
    **extra: object,
) -> Publisher:
    return Publisher(
        kinesis,
        predictions_stream=PREDICTIONS,
        dead_letter_stream=DEAD_LETTERS,
        retry=Retry(attempts, Backoff(0.1, 1.0), sleep or sleeps.append, random.Random(1)),
        metrics=metrics,
        **extra,  # type: ignore[arg-type]
    )


def budget_exhausted(metrics: ConsumerMetrics) -> float:
    """Chunks of predictions given up on after the transient-error budget."""
    return metric_value(
        metrics,
        "dropout_consumer_publish_retries_total",
        stream="predictions",
        error_code="retry_budget_exhausted",
    )


def test_outputs_go_to_their_streams_in_chunks_of_500(metrics: ConsumerMetrics) -> None:
    kinesis = FakeKinesis()
    sleeps: list[float] = []
    batch = outputs(1200) + outputs(3, OutputKind.DEAD_LETTER)
    publisher(kinesis, metrics, sleeps).publish(batch)
    assert kinesis.calls == [
        (PREDICTIONS, 500),
        (PREDICTIONS, 500),
        (PREDICTIONS, 200),
        (DEAD_LETTERS, 3),
    ]
    assert [orjson.loads(d)["i"] for d in kinesis.records(PREDICTIONS)] == list(range(1200))
    assert sleeps == []
    assert (
        metric_value(metrics, "dropout_consumer_published_records_total", stream="predictions")
        == 1200
    )
    assert (
        metric_value(metrics, "dropout_consumer_published_records_total", stream="dead_letters")
        == 3
    )


def test_calls_stay_under_5_mib() -> None:
    kinesis = FakeKinesis()
    publisher(kinesis, None, []).publish(outputs(30, size=400_000))
    sizes = [n for _, n in kinesis.calls]
    assert sum(sizes) == 30
    assert max(sizes) * 400_000 <= MAX_BYTES_PER_CALL
    assert len(sizes) >= 3


def test_partial_failures_are_retried_until_accepted(metrics: ConsumerMetrics) -> None:
    def fail_odd(entries: list[dict[str, object]]) -> list[str | None]:
        return [
            "ProvisionedThroughputExceededException" if i % 2 else None for i in range(len(entries))
        ]

    def fail_first(entries: list[dict[str, object]]) -> list[str | None]:
        return ["InternalFailure"] + [None] * (len(entries) - 1)

    kinesis = FakeKinesis(script=[fail_odd, fail_first])
    sleeps: list[float] = []
    publisher(kinesis, metrics, sleeps).publish(outputs(10))
    # 10 sent, 5 failed and resent, 1 of those failed and resent.
    assert kinesis.calls == [(PREDICTIONS, 10), (PREDICTIONS, 5), (PREDICTIONS, 1)]
    assert sorted(orjson.loads(d)["i"] for d in kinesis.records(PREDICTIONS)) == list(range(10))
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.1
    assert 0 <= sleeps[1] <= 0.2
    retries = "dropout_consumer_publish_retries_total"
    labels = {"stream": "predictions"}
    assert (
        metric_value(
            metrics, retries, **labels, error_code="ProvisionedThroughputExceededException"
        )
        == 5
    )
    assert metric_value(metrics, retries, **labels, error_code="InternalFailure") == 1
    assert metric_value(metrics, "dropout_consumer_published_records_total", **labels) == 10


def test_partial_failures_keep_each_students_order() -> None:
    """A refused entry is retried before any later record of the same student is sent."""

    def fail_first(entries: list[dict[str, object]]) -> list[str | None]:
        return ["ProvisionedThroughputExceededException"] + [None] * (len(entries) - 1)

    kinesis = FakeKinesis(script=[fail_first, fail_first])
    # Three records each of students a and b, interleaved, plus c once.
    keys = ["a", "b", "a", "c", "b", "a", "b"]
    batch = [
        OutputRecord(
            kind=OutputKind.PREDICTION,
            data=orjson.dumps({"i": i, "key": key}),
            partition_key=key,
            position=SourcePosition("shard", str(i)),
        )
        for i, key in enumerate(keys)
    ]
    publisher(kinesis, None, []).publish(batch)
    accepted = [orjson.loads(d) for d in kinesis.records(PREDICTIONS)]
    assert sorted(r["i"] for r in accepted) == list(range(len(keys)))
    for key in "abc":
        assert [r["i"] for r in accepted if r["key"] == key] == [
            i for i, k in enumerate(keys) if k == key
        ]
    # No call carries two records of one student.
    assert all(n <= 3 for _, n in kinesis.calls)


def test_throttled_and_failed_calls_are_retried(metrics: ConsumerMetrics) -> None:
    kinesis = FakeKinesis(
        script=[
            client_error("ProvisionedThroughputExceededException"),
            client_error("ThrottlingException"),
            client_error("InternalFailure"),
            client_error("KMSThrottlingException"),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ]
    )
    sleeps: list[float] = []
    publisher(kinesis, metrics, sleeps, attempts=6).publish(outputs(4))
    assert len(kinesis.calls) == 6
    assert len(kinesis.records(PREDICTIONS)) == 4
    assert len(sleeps) == 5
    # Full jitter under an exponential cap: 0.1, 0.2, 0.4, 0.8, then the 1.0 maximum.
    for sleep, cap in zip(sleeps, [0.1, 0.2, 0.4, 0.8, 1.0], strict=True):
        assert 0 <= sleep <= cap
    for code in ("ThrottlingException", "KMSThrottlingException", "EndpointConnectionError"):
        assert (
            metric_value(
                metrics,
                "dropout_consumer_publish_retries_total",
                stream="predictions",
                error_code=code,
            )
            == 1
        )


def test_transient_failures_exhaust_the_budget(metrics: ConsumerMetrics) -> None:
    kinesis = FakeKinesis(always_fail_with="InternalFailure")
    sleeps: list[float] = []
    with pytest.raises(PublishError) as raised:
        publisher(kinesis, metrics, sleeps, attempts=3).publish(outputs(7))
    assert type(raised.value) is PublishError
    assert raised.value.unpublished == 7
    assert raised.value.attempts == 3
    assert "InternalFailure" in str(raised.value)
    assert len(kinesis.calls) == 3
    assert len(sleeps) == 2
    assert budget_exhausted(metrics) == 1


def test_throttling_is_back_pressure_not_a_failure(metrics: ConsumerMetrics) -> None:
    """A throttle far longer than the budget's worth of calls never fails the batch: it is
    waited out with capped backoff, counted, and reported once per interval."""
    throttled_calls = 400  # 100 times the budget of 4
    kinesis = FakeKinesis(
        script=[client_error("ProvisionedThroughputExceededException")] * throttled_calls
    )
    clock = FakeClock()
    checks: list[float] = []

    def lease_held() -> bool:
        checks.append(clock())
        return True

    pub = publisher(
        kinesis,
        metrics,
        clock.sleeps,
        attempts=4,
        sleep=clock.sleep,
        clock=clock,
        lease_held=lease_held,
        report_interval_seconds=60.0,
    )
    pub.publish(outputs(5))
    assert len(kinesis.calls) == throttled_calls + 1
    assert len(kinesis.records(PREDICTIONS)) == 5
    assert all(sleep <= 1.0 for sleep in clock.sleeps)  # capped
    # The lease was checked (and the throttle reported) about once a minute, not per call.
    assert checks
    assert len(checks) <= clock.now / 60.0 + 1
    throttled = metric_value(
        metrics, "dropout_consumer_publish_throttled_seconds_total", stream="predictions"
    )
    assert throttled == pytest.approx(sum(clock.sleeps))
    assert budget_exhausted(metrics) == 0


def test_a_throttled_batch_whose_lease_moved_stops(metrics: ConsumerMetrics) -> None:
    kinesis = FakeKinesis(always_fail_with="ProvisionedThroughputExceededException")
    clock = FakeClock()
    pub = publisher(
        kinesis,
        None,
        clock.sleeps,
        attempts=4,
        sleep=clock.sleep,
        clock=clock,
        lease_held=lambda: False,
        report_interval_seconds=30.0,
    )
    with pytest.raises(LeaseLostError, match="lease"):
        pub.publish(outputs(2))
    assert 30.0 <= clock.now < 32.0  # at the first report, not before
    assert not kinesis.records(PREDICTIONS)


def test_a_throttled_batch_stops_when_the_daemon_is_gone() -> None:
    kinesis = FakeKinesis(always_fail_with="ThrottlingException")
    alive = iter([True, True, False])
    with pytest.raises(PublishAbandonedError):
        publisher(kinesis, None, [], attempts=2, keep_trying=lambda: next(alive)).publish(
            outputs(1)
        )
    assert len(kinesis.calls) == 3


@pytest.mark.parametrize(
    "code",
    [
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ValidationException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSNotFoundException",
    ],
)
def test_a_permanent_refusal_fails_at_once(
    code: str, metrics: ConsumerMetrics, log_lines: object
) -> None:
    kinesis = FakeKinesis(script=[client_error(code)])
    sleeps: list[float] = []
    with pytest.raises(OutputRefusedError) as raised:
        publisher(kinesis, metrics, sleeps, attempts=20).publish(outputs(3))
    assert len(kinesis.calls) == 1
    assert sleeps == []
    assert raised.value.stream == PREDICTIONS
    assert code in str(raised.value)
    lines = [orjson.loads(line) for line in log_lines.getvalue().splitlines()]  # type: ignore[attr-defined]
    refused = [e for e in lines if e["event"] == "output_refused"]
    assert len(refused) == 1
    assert refused[0]["stream"] == PREDICTIONS
    assert code in refused[0]["errors"]


def test_a_refused_entry_among_throttled_ones_fails_at_once() -> None:
    kinesis = FakeKinesis(
        script=[lambda entries: ["ProvisionedThroughputExceededException", "KMSDisabledException"]]
    )
    with pytest.raises(OutputRefusedError, match="KMSDisabledException"):
        publisher(kinesis, None, []).publish(outputs(2))


def test_error_codes_are_classified() -> None:
    assert classify("ProvisionedThroughputExceededException") is ErrorClass.THROTTLED
    assert classify("KMSThrottlingException") is ErrorClass.THROTTLED
    assert classify("AccessDeniedException") is ErrorClass.PERMANENT
    assert classify("InternalFailure") is ErrorClass.TRANSIENT
    assert classify("EndpointConnectionError") is ErrorClass.TRANSIENT


def test_malformed_response_is_retried() -> None:
    class Short(FakeKinesis):
        def put_records(
            self,
            *,
            StreamName: str,  # noqa: N803 (boto3's keyword names)
            Records: list[dict[str, object]],  # noqa: N803
        ) -> dict[str, object]:
            response = super().put_records(StreamName=StreamName, Records=Records)
            if len(self.calls) == 1:
                response["Records"] = response["Records"][:-1]
            return response

    kinesis = Short()
    publisher(kinesis, None, []).publish(outputs(3))
    assert len(kinesis.calls) == 2


@pytest.fixture
def moto_kinesis(mocked_aws: None) -> object:
    client = boto3.client("kinesis", region_name="us-east-1")
    for stream in (PREDICTIONS, DEAD_LETTERS):
        client.create_stream(StreamName=stream, ShardCount=2)
    return client


def _read_all(client: object, stream: str) -> list[bytes]:
    data: list[bytes] = []
    shards = client.list_shards(StreamName=stream)["Shards"]  # type: ignore[attr-defined]
    for shard in shards:
        iterator = client.get_shard_iterator(  # type: ignore[attr-defined]
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records = client.get_records(ShardIterator=iterator, Limit=10000)["Records"]  # type: ignore[attr-defined]
        data.extend(r["Data"] for r in records)
    return data


def test_publishes_to_kinesis_through_boto3(moto_kinesis: object, metrics: ConsumerMetrics) -> None:
    settings = ConsumerSettings(
        KINESIS_ENDPOINT_URL="",
        PREDICTIONS_STREAM=PREDICTIONS,
        DEAD_LETTER_STREAM=DEAD_LETTERS,
    )
    client = publishing_client(settings)
    Publisher.from_settings(settings, client, metrics).publish(
        outputs(20) + outputs(2, OutputKind.DEAD_LETTER)
    )
    published = sorted(orjson.loads(d)["i"] for d in _read_all(moto_kinesis, PREDICTIONS))
    assert published == list(range(20))
    assert len(_read_all(moto_kinesis, DEAD_LETTERS)) == 2


def test_a_missing_stream_is_refused_at_once(moto_kinesis: object) -> None:
    settings = ConsumerSettings(KINESIS_ENDPOINT_URL="", PREDICTIONS_STREAM="no-such-stream")
    sleeps: list[float] = []
    pub = Publisher(
        publishing_client(settings),
        predictions_stream="no-such-stream",
        dead_letter_stream=DEAD_LETTERS,
        retry=Retry(2, Backoff(0.01, 0.01), sleep=sleeps.append),
    )
    with pytest.raises(OutputRefusedError, match="ResourceNotFoundException"):
        pub.publish(outputs(1))
    assert sleeps == []
