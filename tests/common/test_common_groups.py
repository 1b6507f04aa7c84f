"""The plain JSON group labelling every part shares (common/groups.py): the per-distinct-value
labelling equals the per-record rule, labels stay within the definitions, training's names are
the same functions, and a document's rules catch what the consumer could not use."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import training.fairness
from common.attributes import ATTRIBUTE_NAMES
from common.groups import (
    UNKNOWN,
    assign_groups_from_json,
    document_problems,
    label_from_spec,
    label_values,
    spec_labels,
)
from training.fairness import available_groups, definitions_to_json, select_groups


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(definitions_to_json(select_groups(available_groups())))
    return loaded


def test_training_reexports_the_shared_functions() -> None:
    # One rule for every part: training's names are common's functions, not copies.
    assert training.fairness.label_from_spec is label_from_spec
    assert training.fairness.assign_groups_from_json is assign_groups_from_json


def test_label_values_is_the_per_record_rule_on_uci(uci_data_path: Path) -> None:
    frame = pd.read_csv(uci_data_path, sep=";", encoding="utf-8-sig")
    frame.columns = frame.columns.str.strip()
    for spec in document()["groups"]:
        values = frame[spec["column"]].to_numpy(dtype="float64")
        expected = [label_from_spec(spec, v) for v in values.tolist()]
        assert label_values(spec, values).tolist() == expected, spec["name"]
    typed = assign_groups_from_json(frame, json.dumps(document()))
    assert typed["age_band"].value_counts().to_dict() == {
        "17-20": 2551, "21-24": 735, "25-34": 697, "35+": 441,
    }  # fmt: skip


@pytest.mark.property
@given(
    st.lists(
        st.one_of(st.floats(), st.sampled_from([0.0, 1.0, 16.99, 17.0, 35.0, 1e12, -0.0])),
        max_size=60,
    )
)
def test_labels_are_always_among_the_definitions_labels(values: list[float]) -> None:
    for spec in document()["groups"]:
        labels = label_values(spec, np.asarray(values, dtype="float64"))
        assert len(labels) == len(values)
        assert set(labels.tolist()) <= set(spec_labels(spec))
        for value, label in zip(values, labels.tolist(), strict=True):
            if math.isnan(value) or math.isinf(value):
                assert label == UNKNOWN


def test_spec_labels_order_and_unknown_last() -> None:
    specs = {s["name"]: s for s in document()["groups"]}
    assert spec_labels(specs["age_band"]) == ("17-20", "21-24", "25-34", "35+", UNKNOWN)
    assert spec_labels(specs["nationality"]) == ("portuguese", "other", UNKNOWN)
    assert spec_labels(specs["gender"]) == ("female", "male", UNKNOWN)


def test_a_sound_document_has_no_problem() -> None:
    assert document_problems(document(), list(ATTRIBUTE_NAMES)) == []


def _broken(**changes: Any) -> dict[str, Any]:
    doc = document()
    doc["groups"][0].update(changes)
    return doc


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"schema": "x"}, "schema"),
        ({**document(), "unknown": "n/a"}, "'unknown' must be"),
        ({**document(), "groups": []}, "at least one group"),
        ({**document(), "groups": document()["groups"] * 2}, "names repeat"),
        (_broken(name="Gender"), "snake_case"),
        (_broken(name="worst"), "snake_case"),
        (_broken(column="Shoe size"), "not an attribute"),
        (_broken(bins=[1], labels=["a"]), "exactly one of values or bins"),
        (_broken(values={"0.5": "a"}), "integer strings"),
        (_broken(values={}), "non-empty"),
        (_broken(values={"0": "Female"}), "short lowercase"),
        (_broken(values={"0": "unknown", "1": "male"}), "reserved"),
        (_broken(values={"0": "f"}, other=3), "other must be a string"),
    ],
)
def test_broken_documents_are_named(doc: dict[str, Any], words: str) -> None:
    problems = document_problems(doc, list(ATTRIBUTE_NAMES))
    assert problems
    assert words in "; ".join(problems)


@pytest.mark.parametrize(
    ("bins", "labels", "words"),
    [
        ([17, 21], ["a"], "same, non-zero length"),
        ([21, 17], ["a", "b"], "increase"),
        ([17, float("inf")], ["a", "b"], "finite"),
        ([17, "21"], ["a", "b"], "finite numbers"),
        ([17, True], ["a", "b"], "finite numbers"),
    ],
)
def test_broken_bins_are_named(bins: list[Any], labels: list[str], words: str) -> None:
    doc = document()
    age = next(g for g in doc["groups"] if g["name"] == "age_band")
    age.update(bins=bins, labels=labels)
    assert words in "; ".join(document_problems(doc, list(ATTRIBUTE_NAMES)))
