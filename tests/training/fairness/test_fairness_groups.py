"""Group definitions: bounded labels on the real UCI data, the JSON form, the selection."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from training.fairness import (
    DEFAULT_GROUP_NAMES,
    UNKNOWN,
    GroupDefinition,
    assign_groups,
    assign_groups_from_json,
    available_groups,
    definitions_from_json,
    definitions_to_dicts,
    definitions_to_json,
    label_from_spec,
    select_groups,
)

DOCUMENTED_LABELS = {
    "gender": {"female", "male"},
    "age_band": {"17-20", "21-24", "25-34", "35+"},
    "nationality": {"portuguese", "other"},
    "international": {"no", "yes"},
    "displaced": {"no", "yes"},
    "special_needs": {"no", "yes"},
    "debtor": {"no", "yes"},
    "scholarship_holder": {"no", "yes"},
}


def test_every_uci_row_gets_a_documented_label(uci_frame: pd.DataFrame) -> None:
    definitions = select_groups(available_groups())  # the defaults and `international`
    labels = assign_groups(uci_frame, definitions)
    assert list(labels.columns) == list(available_groups())
    assert labels.index.equals(uci_frame.index)
    for name, allowed in DOCUMENTED_LABELS.items():
        seen = set(labels[name])
        # The UCI file has no missing value, so no row is unknown there.
        assert seen == allowed, name
        assert set(available_groups()[name].group_labels()) == allowed | {UNKNOWN}


def test_uci_labels_agree_with_the_source_columns(uci_frame: pd.DataFrame) -> None:
    labels = assign_groups(uci_frame, select_groups())
    assert ((labels["gender"] == "male") == (uci_frame["Gender"] == 1)).all()
    assert ((labels["nationality"] == "portuguese") == (uci_frame["Nacionality"] == 1)).all()
    assert ((labels["debtor"] == "yes") == (uci_frame["Debtor"] == 1)).all()
    age = uci_frame["Age at enrollment"]
    order = ["17-20", "21-24", "25-34", "35+"]
    expected = pd.cut(age, [17, 21, 25, 35, np.inf], right=False, labels=order).astype(str)
    assert (labels["age_band"] == expected).all()
    counts = labels["age_band"].value_counts()
    assert counts.to_dict() == {"17-20": 2551, "21-24": 735, "25-34": 697, "35+": 441}


def test_international_repeats_nationality_on_uci(uci_frame: pd.DataFrame) -> None:
    """Why `international` is not a default: on UCI it is the same split as `nationality`."""
    labels = assign_groups(uci_frame, select_groups(["nationality", "international"]))
    assert ((labels["nationality"] == "other") == (labels["international"] == "yes")).all()
    assert "international" not in DEFAULT_GROUP_NAMES


def test_json_round_trip_gives_identical_labels_on_uci(uci_frame: pd.DataFrame) -> None:
    definitions = select_groups(available_groups())
    text = definitions_to_json(definitions)
    typed = assign_groups(uci_frame, definitions)
    plain = assign_groups_from_json(uci_frame, text)
    pd.testing.assert_frame_equal(typed, plain)
    assert definitions_from_json(text) == definitions
    reread = assign_groups(uci_frame, definitions_from_json(text))
    pd.testing.assert_frame_equal(typed, reread)


def test_json_round_trip_gives_identical_labels_on_messy_records() -> None:
    """Stage records: NaN, None, floats, strings, out-of-domain codes and ages."""
    frame = pd.DataFrame(
        {
            "Gender": [0, 1.0, None, np.nan, 2, "1", " 0 ", "x", 0.5, True],
            "Age at enrollment": [17, 20.9, 21, 24.99, 25, 35, 70, 16, None, "34"],
            "Nacionality": [1, 41, None, 1.0, "1", 109, -3, 1.5, np.inf, "abc"],
            "International": [0, 1, 1, 0, None, 0, 0, 0, 0, 0],
            "Displaced": [1, 0, 0, 1, 1, None, 0, 0, 0, 0],
            "Educational special needs": [0] * 9 + [None],
            "Debtor": [0, 1] * 5,
            "Scholarship holder": [1, 0] * 5,
        }
    )
    definitions = select_groups(available_groups())
    typed = assign_groups(frame, definitions)
    plain = assign_groups_from_json(frame, definitions_to_json(definitions))
    pd.testing.assert_frame_equal(typed, plain)
    assert typed["gender"].tolist() == [
        "female", "male", UNKNOWN, UNKNOWN, UNKNOWN, "male", "female", UNKNOWN, UNKNOWN, "male",
    ]  # fmt: skip
    assert typed["age_band"].tolist() == [
        "17-20", "17-20", "21-24", "21-24", "25-34", "35+", "35+", UNKNOWN, UNKNOWN, "25-34",
    ]  # fmt: skip
    assert typed["nationality"].tolist() == [
        "portuguese", "other", UNKNOWN, "portuguese", "portuguese", "other", "other", UNKNOWN,
        UNKNOWN, UNKNOWN,
    ]  # fmt: skip


def test_json_form_is_plain_and_documented() -> None:
    by_name = {d["name"]: d for d in definitions_to_dicts(select_groups())}
    assert by_name["age_band"]["bins"] == [17, 21, 25, 35]
    assert by_name["age_band"]["labels"] == ["17-20", "21-24", "25-34", "35+"]
    assert by_name["age_band"]["column"] == "Age at enrollment"
    assert by_name["gender"]["values"] == {"0": "female", "1": "male"}
    assert by_name["nationality"] == {
        "name": "nationality",
        "column": "Nacionality",
        "description": by_name["nationality"]["description"],
        "values": {"1": "portuguese"},
        "other": "other",
    }
    assert all(d["description"] for d in by_name.values())
    document = json.loads(definitions_to_json(select_groups()))
    assert document["schema"] == "fairness-groups/1"
    assert document["unknown"] == UNKNOWN
    assert [g["name"] for g in document["groups"]] == list(DEFAULT_GROUP_NAMES)


def test_label_from_spec_is_the_per_record_rule() -> None:
    age = {"bins": [17, 21, 25, 35], "labels": ["17-20", "21-24", "25-34", "35+"]}
    assert [label_from_spec(age, v) for v in (17, 20, 21, 34.9, 35, 99, 16, None)] == [
        "17-20", "17-20", "21-24", "25-34", "35+", "35+", UNKNOWN, UNKNOWN,
    ]  # fmt: skip
    gender = {"values": {"0": "female", "1": "male"}}
    assert [label_from_spec(gender, v) for v in (0, 1, "1", 1.0, 3, float("nan"))] == [
        "female", "male", "male", "male", UNKNOWN, UNKNOWN,
    ]  # fmt: skip


def test_default_selection_and_order() -> None:
    assert [d.name for d in select_groups()] == list(DEFAULT_GROUP_NAMES)
    assert [d.name for d in select_groups(["debtor", "gender"])] == ["debtor", "gender"]


def test_unknown_group_name_raises_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown fairness group") as error:
        select_groups(["gender", "religion"])
    message = str(error.value)
    assert "religion" in message
    for name in available_groups():
        assert name in message


@pytest.mark.parametrize("names", [[], ["gender", "gender"]])
def test_empty_or_repeated_selection_raises(names: list[str]) -> None:
    with pytest.raises(ValueError, match="valid names: gender, age_band"):
        select_groups(names)


def test_missing_column_is_a_clear_error() -> None:
    frame = pd.DataFrame({"Gender": [0, 1]})
    with pytest.raises(ValueError, match="'Age at enrollment' \\(for age_band\\)"):
        assign_groups(frame, select_groups(["gender", "age_band"]))
    text = definitions_to_json(select_groups(["age_band"]))
    with pytest.raises(ValueError, match="Age at enrollment"):
        assign_groups_from_json(frame, text)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Gender", "column": "Gender", "values": {"0": "f"}},  # not snake_case
        {"name": "worst", "column": "Gender", "values": {"0": "f"}},  # reserved
        {"name": "g", "column": "Gender"},  # neither values nor bins
        {"name": "g", "column": "A", "values": {"0": "a"}, "bins": [1], "labels": ["a"]},
        {"name": "g", "column": "Gender", "values": {"0.5": "f"}},  # not an integer code
        {"name": "g", "column": "Gender", "values": {"0": "unknown"}},  # reserved label
        {"name": "g", "column": "Gender", "values": {"0": "Has Space"}},
        {"name": "g", "column": "Age", "bins": [30, 20], "labels": ["a", "b"]},
        {"name": "g", "column": "Age", "bins": [20, 30], "labels": ["a"]},
    ],
)
def test_invalid_definitions_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        GroupDefinition.model_validate(fields)


def test_json_that_is_not_a_groups_document_is_refused() -> None:
    frame = pd.DataFrame({"Gender": [0]})
    with pytest.raises(ValueError, match="fairness-groups/1"):
        assign_groups_from_json(frame, json.dumps([{"name": "gender"}]))
    with pytest.raises(ValueError, match="fairness-groups/1"):
        definitions_from_json(json.dumps({"schema": "other", "groups": []}))
