"""Record validation: every reason code, its detail, and what a valid record becomes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from common.contract import Contract
from common.wire import Reason
from consumer.scoring.validation import MAX_IGNORED_LISTED, Accepted, RecordValidator, Rejected
from tests.support.model_builder import SAMPLE_FEATURES, dataset_records


@pytest.fixture(scope="module")
def validator(contract: Contract) -> RecordValidator:
    return RecordValidator(contract, max_record_bytes=64 * 1024)


def record(features: object = None, **top: object) -> bytes:
    body: dict[str, object] = {"student_id": 256, "student_features": dict(SAMPLE_FEATURES)}
    if features is not None:
        body["student_features"] = features
    body.update(top)
    return json.dumps(body).encode()


def with_features(**changes: object) -> bytes:
    features = dict(SAMPLE_FEATURES)
    features.update(changes)
    return record(features)


def rejected(validator: RecordValidator, data: bytes) -> Rejected:
    verdict = validator.validate(data)
    assert isinstance(verdict, Rejected), verdict
    return verdict


def test_the_design_sample_record_is_valid(validator: RecordValidator) -> None:
    verdict = validator.validate(record())
    assert isinstance(verdict, Accepted)
    assert verdict.student_id == 256
    assert verdict.ignored == []
    row = np.array([verdict.row])
    assert row[0, validator.attribute_names.index("GDP")] == 1.74
    assert row[0, validator.attribute_names.index("Tuition fees up to date")] == 1.0
    assert np.isnan(row[0, validator.attribute_names.index("Course")])
    stages, missing = validator.describe_rows(row)
    assert stages == ["second_semester"]
    assert len(missing[0]) == 36 - len(SAMPLE_FEATURES)
    assert "Course" in missing[0]
    assert "GDP" not in missing[0]


@pytest.mark.parametrize(
    ("data", "reason", "detail"),
    [
        (b"x" * (64 * 1024 + 1), Reason.PAYLOAD_TOO_LARGE, "65537 bytes"),
        (b'{"student_id": 1, "x": "\xff\xfe"}', Reason.INVALID_ENCODING, "not valid UTF-8"),
        (b"\xc3\x28", Reason.INVALID_ENCODING, "not valid UTF-8"),
        (b"", Reason.INVALID_JSON, "not valid JSON"),
        (b'{"student_id": 1,', Reason.INVALID_JSON, "not valid JSON"),
        (b'{"student_id": 1, "student_features": {"GDP": NaN}}', Reason.INVALID_JSON, "JSON"),
        (b'{"student_id": 1, "student_features": {"GDP": Infinity}}', Reason.INVALID_JSON, ""),
        (b'{"student_id": 1, "student_features": {"GDP": 1e400}}', Reason.INVALID_JSON, ""),
        (b"\xef\xbb\xbf{}", Reason.INVALID_JSON, "BOM"),
        (b"[1, 2]", Reason.NOT_AN_OBJECT, "got an array"),
        (b'"text"', Reason.NOT_AN_OBJECT, "got a string"),
        (b"null", Reason.NOT_AN_OBJECT, "got null"),
        (b"42", Reason.NOT_AN_OBJECT, "got a number"),
        (b'{"student_features": {}}', Reason.MISSING_STUDENT_ID, "student_id is missing"),
        (b'{"student_id": null, "student_features": {}}', Reason.MISSING_STUDENT_ID, "null"),
        (b'{"student_id": -1, "student_features": {}}', Reason.INVALID_STUDENT_ID, "got -1"),
        (b'{"student_id": 1.5, "student_features": {}}', Reason.INVALID_STUDENT_ID, "a number"),
        (b'{"student_id": 256.0, "student_features": {}}', Reason.INVALID_STUDENT_ID, "number"),
        (b'{"student_id": true, "student_features": {}}', Reason.INVALID_STUDENT_ID, "boolean"),
        (b'{"student_id": "", "student_features": {}}', Reason.INVALID_STUDENT_ID, "got 0"),
        (b'{"student_id": [1], "student_features": {}}', Reason.INVALID_STUDENT_ID, "an array"),
        (
            b'{"student_id": 123456789012345678901234567890, "student_features": {}}',
            Reason.INVALID_STUDENT_ID,
            "",
        ),
        (b'{"student_id": 1}', Reason.MISSING_FEATURES, "student_features is missing"),
        (b'{"student_id": 1, "student_features": null}', Reason.MISSING_FEATURES, "null"),
        (b'{"student_id": 1, "student_features": [1]}', Reason.INVALID_FEATURES, "an array"),
        (b'{"student_id": 1, "student_features": "x"}', Reason.INVALID_FEATURES, "a string"),
    ],
)
def test_record_level_reasons(
    validator: RecordValidator, data: bytes, reason: Reason, detail: str
) -> None:
    verdict = rejected(validator, data)
    assert verdict.reason is reason
    assert detail in verdict.detail


def test_long_student_id_is_refused_and_128_characters_pass(validator: RecordValidator) -> None:
    assert isinstance(validator.validate(record(student_id="s" * 128)), Accepted)
    verdict = rejected(validator, record(student_id="s" * 129))
    assert verdict.reason is Reason.INVALID_STUDENT_ID
    assert isinstance(validator.validate(record(student_id=2**64 - 1)), Accepted)


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        (
            {"GDP": "1.74"},
            Reason.WRONG_TYPE,
            "student_features['GDP']: expected a number, got a string",
        ),
        ({"GDP": True}, Reason.WRONG_TYPE, "got a boolean"),
        ({"GDP": [1.0]}, Reason.WRONG_TYPE, "got an array"),
        ({"GDP": {"value": 1}}, Reason.WRONG_TYPE, "got an object"),
        ({"Curricular units 1st sem (approved)": 1.5}, Reason.WRONG_TYPE, "expected an integer"),
        ({"Curricular units 1st sem (approved)": "5"}, Reason.WRONG_TYPE, "expected an integer"),
        ({"Scholarship holder": False}, Reason.WRONG_TYPE, "got a boolean"),
        ({"GDP": 21.0}, Reason.OUT_OF_RANGE, "student_features['GDP']: 21.0 is outside [-20, 20]"),
        ({"GDP": -1e300}, Reason.OUT_OF_RANGE, "is outside"),
        ({"Curricular units 1st sem (enrolled)": -1}, Reason.OUT_OF_RANGE, "is outside"),
        ({"Curricular units 1st sem (enrolled)": 10**30}, Reason.OUT_OF_RANGE, "outside"),
        ({"Tuition fees up to date": 2}, Reason.OUT_OF_RANGE, "outside [0, 1]"),
        ({"Course": 34}, Reason.UNKNOWN_CATEGORY, "student_features['Course']: 34 is not a known"),
        ({"Tuition fees up to date": None}, Reason.MISSING_REQUIRED_ATTRIBUTE, "required"),
    ],
)
def test_attribute_level_reasons(
    validator: RecordValidator, changes: dict[str, object], reason: Reason, detail: str
) -> None:
    verdict = rejected(validator, with_features(**changes))
    assert verdict.reason is reason
    assert detail in verdict.detail
    assert verdict.student_id == 256


def test_required_attribute_absent(validator: RecordValidator) -> None:
    features = dict(SAMPLE_FEATURES)
    del features["Scholarship holder"]
    verdict = rejected(validator, record(features))
    assert verdict.reason is Reason.MISSING_REQUIRED_ATTRIBUTE
    assert "Scholarship holder" in verdict.detail


def test_not_finite_values_given_directly_are_out_of_range(validator: RecordValidator) -> None:
    for value in (math.nan, math.inf, -math.inf):
        features = {**SAMPLE_FEATURES, "GDP": value}
        verdict = validator.validate_object({"student_id": 1, "student_features": features})
        assert isinstance(verdict, Rejected)
        assert verdict.reason is Reason.OUT_OF_RANGE
    features = {**SAMPLE_FEATURES, "Curricular units 1st sem (approved)": math.inf}
    verdict = validator.validate_object({"student_id": 1, "student_features": features})
    assert isinstance(verdict, Rejected)
    assert verdict.reason is Reason.OUT_OF_RANGE
    assert "not finite" in verdict.detail


def test_integral_floats_pass_as_ints_and_nulls_are_missing(validator: RecordValidator) -> None:
    verdict = validator.validate(
        with_features(**{"Curricular units 1st sem (approved)": 5.0, "Inflation rate": None})
    )
    assert isinstance(verdict, Accepted)
    assert np.isnan(verdict.row[validator.attribute_names.index("Inflation rate")])
    assert verdict.row[validator.attribute_names.index("Curricular units 1st sem (approved)")] == 5


def test_names_are_trimmed_unknown_ones_ignored_and_listed(validator: RecordValidator) -> None:
    features = {
        **SAMPLE_FEATURES,
        "Daytime/evening attendance\t": 1,
        "  Course ": 171,
        "favourite colour": "blue",
        "nested": {"deep": [1, {"x": None}]},
    }
    verdict = validator.validate(record(features))
    assert isinstance(verdict, Accepted)
    assert verdict.row[validator.attribute_names.index("Daytime/evening attendance")] == 1.0
    assert verdict.row[validator.attribute_names.index("Course")] == 171.0
    assert verdict.ignored == ["favourite colour", "nested"]
    assert verdict.ignored_count == 2


def test_ignored_listing_is_bounded(validator: RecordValidator) -> None:
    features = {**SAMPLE_FEATURES, **{f"extra {i}" + "x" * 250: i for i in range(200)}}
    verdict = validator.validate(record(features))
    assert isinstance(verdict, Accepted)
    assert verdict.ignored_count == 200
    assert len(verdict.ignored) == MAX_IGNORED_LISTED
    assert all(len(name) <= 128 for name in verdict.ignored)


def test_duplicate_keys_last_one_wins(validator: RecordValidator) -> None:
    data = (
        b'{"student_id": 1, "student_id": 2, "student_features": {"GDP": 50, "GDP": 1.0,'
        b' "Tuition fees up to date": 1, "Scholarship holder": 0}}'
    )
    verdict = validator.validate(data)
    assert isinstance(verdict, Accepted)
    assert verdict.student_id == 2
    assert verdict.row[validator.attribute_names.index("GDP")] == 1.0
    bad_last = (
        b'{"student_id": 1, "student_features": {"GDP": 1.0, "GDP": 50,'
        b' "Tuition fees up to date": 1, "Scholarship holder": 0}}'
    )
    assert rejected(validator, bad_last).reason is Reason.OUT_OF_RANGE


def test_other_top_level_keys_are_ignored(validator: RecordValidator) -> None:
    assert isinstance(validator.validate(record(event="x", version=[1, 2])), Accepted)


def test_stage_is_the_latest_stage_with_an_attribute(validator: RecordValidator) -> None:
    only_enrollment = {"Tuition fees up to date": 1, "Scholarship holder": 0, "GDP": 1.0}
    first = {**only_enrollment, "Curricular units 1st sem (approved)": 3}
    rows = []
    for features in (only_enrollment, first):
        verdict = validator.validate(record(features))
        assert isinstance(verdict, Accepted)
        rows.append(verdict.row)
    stages, missing = validator.describe_rows(np.array(rows))
    assert stages == ["enrollment", "first_semester"]
    assert len(missing[0]) == 33
    assert len(missing[1]) == 32
    assert validator.describe_rows(np.empty((0, validator.width))) == ([], [])


def test_a_batch_of_500_typical_records_validates_to_their_own_values(
    validator: RecordValidator, data_path: Path
) -> None:
    # How fast this runs is measured by benchmarks/scoring_throughput.py (its validate
    # column), not asserted here: a timed assertion fails on a busy machine, not on a defect.
    records = dataset_records(data_path, 500)
    rows = []
    for data in records:
        verdict = validator.validate(data)
        assert isinstance(verdict, Accepted), verdict
        sent = orjson.loads(data)
        assert verdict.student_id == sent["student_id"]
        assert verdict.ignored == []
        expected = [float(sent["student_features"][name]) for name in validator.attribute_names]
        assert list(verdict.row) == expected
        rows.append(verdict.row)
    # Full records send every attribute: none is missing, every one is at the last stage.
    stages, missing = validator.describe_rows(np.array(rows))
    assert set(stages) == {"second_semester"}
    assert all(m == [] for m in missing)


def test_validation_never_raises_on_odd_json(validator: RecordValidator) -> None:
    odd = [
        {"student_id": 0, "student_features": {"": 1, " ": None, "\u0000": [], "GDP": 0}},
        {"student_id": "\u202e\U0001f600", "student_features": {}},
        {"student_id": 1, "student_features": {"GDP": -0.0, "Tuition fees up to date": 1e-320}},
    ]
    for document in odd:
        verdict = validator.validate(orjson.dumps(document))
        assert isinstance(verdict, Accepted | Rejected)
