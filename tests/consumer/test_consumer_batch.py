"""The validate -> score -> encode path: one output per input, in order, exactly as specified."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from common.contract import Contract
from common.wire import Reason
from consumer.output.encoding import MAX_DEAD_LETTER_PAYLOAD_BYTES, MAX_OUTPUT_RECORD_BYTES
from consumer.records import InputRecord, OutputKind, SourcePosition
from consumer.scoring.batch import run_batch
from consumer.scoring.served_model import ServedModel
from tests.support.fakes import FakeModel
from tests.support.model_builder import SAMPLE_FEATURES, dataset_records, sample_record

PREDICTION_KEYS = [
    "schema",
    "student_id",
    "dropout_probability",
    "at_risk",
    "threshold",
    "risk_band",
    "top_factors",
    "stage",
    "missing_attributes",
    "ignored_attributes",
    "model",
    "source",
    "scored_at",
]
DEAD_LETTER_KEYS = [
    "schema",
    "reason",
    "detail",
    "payload",
    "payload_base64",
    "payload_bytes",
    "payload_truncated",
    "student_id",
    "model",
    "source",
    "failed_at",
]


def inputs(*payloads: bytes, shard: str = "shardId-000000000001") -> list[InputRecord]:
    return [
        InputRecord(data, SourcePosition(shard, f"4959{i:06d}", i % 2, 1_764_151_200_000 + i))
        for i, data in enumerate(payloads)
    ]


def good(student_id: int | str = 256, **features: Any) -> bytes:
    return orjson.dumps(sample_record(student_id, **features))


MIXED: list[tuple[bytes, Reason | None]] = [
    (good(1), None),
    (b"{oops", Reason.INVALID_JSON),
    (good(2, GDP=-2.0), None),
    (b"\xff\xfe\x00", Reason.INVALID_ENCODING),
    (b"[]", Reason.NOT_AN_OBJECT),
    (b'{"student_features": {}}', Reason.MISSING_STUDENT_ID),
    (b'{"student_id": false, "student_features": {}}', Reason.INVALID_STUDENT_ID),
    (b'{"student_id": 3}', Reason.MISSING_FEATURES),
    (b'{"student_id": 3, "student_features": 7}', Reason.INVALID_FEATURES),
    (good(4, **{"Scholarship holder": None}), Reason.MISSING_REQUIRED_ATTRIBUTE),
    (good(5, GDP="high"), Reason.WRONG_TYPE),
    (good(6, GDP=99), Reason.OUT_OF_RANGE),
    (good(7, Course=34), Reason.UNKNOWN_CATEGORY),
    (b"z" * (64 * 1024 + 10), Reason.PAYLOAD_TOO_LARGE),
    (good("s-8", GDP=7.77), Reason.SCORING_FAILED),
    (good("s-9", **{"favourite colour": "blue"}), None),
]


def test_mixed_batch_every_reason_one_output_per_input_in_order(
    fake_served: ServedModel, fake_model: FakeModel
) -> None:
    records = inputs(*(data for data, _ in MIXED))
    result = run_batch(fake_served, records)
    assert len(result.outputs) == len(records)
    decoded = [orjson.loads(o.data) for o in result.outputs]
    for (data, reason), output, body, record in zip(
        MIXED, result.outputs, decoded, records, strict=True
    ):
        assert body["source"] == {
            "shard_id": record.position.shard_id,
            "sequence_number": record.position.sequence_number,
            "sub_sequence_number": record.position.sub_sequence_number,
            "arrival_timestamp_ms": record.position.arrival_timestamp_ms,
        }
        assert body["model"] == {"name": "student-dropout", "version": "1"}
        if reason is None:
            assert output.kind is OutputKind.PREDICTION
            assert list(body) == PREDICTION_KEYS
            assert body["schema"] == "dropout.prediction.v1"
        else:
            assert output.kind is OutputKind.DEAD_LETTER
            assert list(body) == DEAD_LETTER_KEYS
            assert body["schema"] == "dropout.dead_letter.v1"
            assert body["reason"] == reason.value == output.reason
            assert body["detail"]
            assert body["payload_bytes"] == len(data)
    # Every reason code of docs/wire-formats.md appears.
    assert {r for _, r in MIXED if r} == set(Reason)
    # The batch call failed because of the poisoned row; each valid row was then scored alone.
    assert result.scored_alone
    assert fake_model.calls[0] == 4
    assert fake_model.calls[1:] == [1, 1, 1, 1]
    assert result.counts.predictions == 3
    assert result.scored_rows.shape == (3, 36)
    assert result.counts.reasons[Reason.SCORING_FAILED] == 1


def test_prediction_record_content(fake_served: ServedModel) -> None:
    features = {**SAMPLE_FEATURES, "favourite colour": "blue", " GDP ": 1.0}
    [output] = run_batch(
        fake_served, inputs(orjson.dumps({"student_id": 256, "student_features": features}))
    ).outputs
    body = orjson.loads(output.data)
    assert output.partition_key == "256"
    assert body["student_id"] == 256
    assert body["dropout_probability"] == pytest.approx(0.7310585786)
    assert body["at_risk"] is True
    assert body["threshold"] == 0.42
    assert body["risk_band"] == "high"
    assert body["top_factors"] == [
        {"feature": "GDP", "label": "GDP", "value": 1.0, "contribution": 1.0}
    ]
    assert body["stage"] == "second_semester"
    assert body["ignored_attributes"] == ["favourite colour"]
    assert "Course" in body["missing_attributes"]
    assert "GDP" not in body["missing_attributes"]
    assert body["scored_at"].endswith("Z")
    assert len(body["scored_at"]) == len("2026-11-26T10:00:00.123Z")
    assert output.ignored_count == 1


def test_dead_letter_partition_keys_and_student_ids(fake_served: ServedModel) -> None:
    result = run_batch(fake_served, inputs(b"{", good("abc", GDP="x")))
    first, second = (orjson.loads(o.data) for o in result.outputs)
    assert first["student_id"] is None
    assert result.outputs[0].partition_key == result.outputs[0].position.sequence_number
    assert second["student_id"] == "abc"
    assert result.outputs[1].partition_key == "abc"


def test_dead_letter_payloads_text_base64_and_truncated(fake_served: ServedModel) -> None:
    huge = json.dumps({"student_id": 1, "pad": "é" * 200_000}).encode()
    binary = b"\x00\xff" * 10
    control = b"\x01" * (300 * 1024)
    result = run_batch(fake_served, inputs(b"not json", binary, huge, control))
    text, b64, truncated, escaped = (orjson.loads(o.data) for o in result.outputs)
    assert text["payload"] == "not json"
    assert text["payload_base64"] is None
    assert text["payload_truncated"] is False
    assert b64["payload"] is None
    assert base64.b64decode(b64["payload_base64"]) == binary
    assert truncated["reason"] == "payload_too_large"
    assert truncated["payload_truncated"] is True
    assert truncated["payload_bytes"] == len(huge)
    assert len(truncated["payload"].encode()) <= MAX_DEAD_LETTER_PAYLOAD_BYTES
    assert huge.decode().startswith(truncated["payload"])
    # Control characters escape to six bytes each: the payload is cut further to fit a record.
    assert escaped["payload_truncated"] is True
    assert all(len(o.data) <= MAX_OUTPUT_RECORD_BYTES for o in result.outputs)


def test_batch_fallback_when_the_model_returns_bad_output(contract: Contract) -> None:
    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        out = FakeModel()(frame)
        if len(frame) > 1:
            return out.iloc[:1]  # wrong row count: off contract
        if frame["GDP"].iloc[0] == 2.5:
            out["dropout_probability"] = float("nan")
        return out

    model = ServedModel.build(
        name="m", version="9", contract=contract, predict=predict, max_record_bytes=65536
    )
    result = run_batch(model, inputs(good(1), good(2, GDP=2.5), good(3)))
    kinds = [o.kind for o in result.outputs]
    assert kinds == [OutputKind.PREDICTION, OutputKind.DEAD_LETTER, OutputKind.PREDICTION]
    detail = orjson.loads(result.outputs[1].data)["detail"]
    assert "not in [0, 1]" in detail


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        (lambda out: out.assign(at_risk=~out["at_risk"]), "at_risk contradicts"),
        (lambda out: out.assign(risk_band="purple"), "'purple' is not a band"),
        (lambda out: out.set_axis(["a", "b", "c", "d"], axis=1), "lacks columns"),
    ],
    ids=["decision_contradicts_probability", "unknown_band", "renamed_columns"],
)
def test_off_contract_decisions_are_scoring_failures(
    contract: Contract, tamper: Any, detail: str
) -> None:
    """A prediction must never carry a decision or band its own contract contradicts."""

    def predict(frame: pd.DataFrame) -> pd.DataFrame:
        out = FakeModel()(frame)
        return tamper(out) if frame["GDP"].iloc[0] == 2.5 else out

    model = ServedModel.build(
        name="m", version="9", contract=contract, predict=predict, max_record_bytes=65536
    )
    result = run_batch(model, inputs(good(1, GDP=2.5), good(2)))
    kinds = [o.kind for o in result.outputs]
    # The batch call fails, each row is retried alone: only the tampered one is dead-lettered.
    assert kinds == [OutputKind.DEAD_LETTER, OutputKind.PREDICTION]
    letter = orjson.loads(result.outputs[0].data)
    assert letter["reason"] == "scoring_failed"
    assert detail in letter["detail"]


def test_empty_batch(fake_served: ServedModel) -> None:
    result = run_batch(fake_served, [])
    assert result.outputs == []
    assert result.scored_rows.shape == (0, 36)


def test_real_model_scores_realistic_records(served_model: ServedModel, data_path: Path) -> None:
    records = inputs(*dataset_records(data_path, 200), good(256))
    result = run_batch(served_model, records)
    assert result.counts.predictions == 201
    assert not result.scored_alone
    bodies = [orjson.loads(o.data) for o in result.outputs]
    for body in bodies:
        assert 0.0 <= body["dropout_probability"] <= 1.0
        assert body["at_risk"] == (body["dropout_probability"] >= body["threshold"])
        assert len(body["top_factors"]) == served_model.contract.top_k_factors
        assert body["model"]["name"] == "student-dropout"
    assert bodies[-1]["student_id"] == 256
    assert bodies[-1]["stage"] == "second_semester"
    # The same record scores the same alone as in a batch.
    alone = run_batch(served_model, records[-1:])
    assert orjson.loads(alone.outputs[0].data)["dropout_probability"] == pytest.approx(
        bodies[-1]["dropout_probability"], abs=1e-9
    )
