"""Per-group flag rates on the stream: counted per group, stage and version through the real
processor path, labels bounded by the contract, reset and reloaded with the served version, and
a contract's fairness section checked like the rest of it (through the real loader too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from prometheus_client import CollectorRegistry

from common.attributes import ATTRIBUTE_NAMES, STAGES
from common.contract import Contract, ContractError, parse_contract
from common.groups import label_from_spec
from consumer.model.holder import ModelHolder
from consumer.model.loader import ModelLoader
from consumer.model.outcomes import LoadOutcome
from consumer.model.poller import ModelPoller
from consumer.observe.fairness import GroupRates
from consumer.observe.metrics import ConsumerMetrics
from consumer.scoring.served_model import ServedModel
from tests.support.fairness import scaled_reference, training_fairness_section
from tests.support.fakes import FakeModel
from tests.support.harness import PREDICTIONS, Harness
from tests.support.model_builder import (
    BuiltModel,
    copy_model,
    dataset_records,
    edit_contract,
    register_model_dir,
    sample_record,
)

SCORED = "dropout_consumer_group_scored_total"
FLAGGED = "dropout_consumer_group_flagged_total"
RATIO = "dropout_consumer_group_reference_flag_ratio"
RATE = "dropout_consumer_group_reference_flag_rate"


@pytest.fixture(scope="module")
def section(data_path: Path) -> dict[str, Any]:
    return training_fairness_section(data_path)


def with_section(contract: Contract, section: dict[str, Any] | None) -> Contract:
    raw = contract.model_dump(mode="json")
    raw["fairness"] = section
    return parse_contract(json.dumps(raw))


def served(contract: Contract, version: str, threshold: float = 0.42) -> ServedModel:
    return ServedModel.build(
        name="student-dropout",
        version=version,
        contract=contract,
        predict=FakeModel(threshold=threshold),
        max_record_bytes=64 * 1024,
    )


def samples(metrics: ConsumerMetrics, name: str) -> dict[tuple[str, str, str, str], float]:
    found = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                labels = sample.labels
                key = (labels["attribute"], labels["group"], labels["stage"])
                found[(*key, labels["model_version"])] = sample.value
    return found


def test_counts_per_group_stage_and_version(
    metrics: ConsumerMetrics, contract: Contract, section: dict[str, Any], data_path: Path
) -> None:
    model = served(with_section(contract, section), "1")
    h = Harness(metrics, model)
    full = dataset_records(data_path, 120)
    seven = [orjson.dumps(sample_record(100_000 + i, GDP=float(i % 5) - 2)) for i in range(30)]
    h.batch([*full, *seven, b"{broken"])
    outputs = h.outputs(PREDICTIONS)
    assert len(outputs) == 150  # the broken record is a dead letter, never counted

    # Independently: each prediction's group from the UCI row it came from (or unknown).
    frame = pd.read_csv(data_path, sep=";", encoding="utf-8-sig")
    gender = {0: "female", 1: "male"}
    expected: dict[tuple[str, str, str], list[int]] = {}
    for output in outputs:
        sid = output["student_id"]
        group = gender[int(frame["Gender"].iloc[sid])] if sid < 100_000 else "unknown"
        counts = expected.setdefault(("gender", group, output["stage"]), [0, 0])
        counts[0] += 1
        counts[1] += int(output["at_risk"])
    scored, flagged = samples(metrics, SCORED), samples(metrics, FLAGGED)
    for (attribute, group, stage), (n, k) in expected.items():
        assert scored[(attribute, group, stage, "1")] == n
        assert flagged[(attribute, group, stage, "1")] == k
    assert sum(v for key, v in scored.items() if key[0] == "gender") == 150
    # Every attribute counts every prediction once.
    for attribute in ("age_band", "scholarship_holder", "special_needs"):
        assert sum(v for key, v in scored.items() if key[0] == attribute) == 150
    # The seed's 7-attribute record has the scholarship flag but no age.
    assert scored[("age_band", "unknown", "second_semester", "1")] == 30
    assert sum(v for k, v in scored.items() if k[:2] == ("scholarship_holder", "unknown")) == 0


def test_references_come_from_the_contract(
    metrics: ConsumerMetrics, contract: Contract, section: dict[str, Any]
) -> None:
    edited = json.loads(json.dumps(section))
    edited["reference"]["enrollment"]["gender"]["groups"]["female"]["small"] = True
    Harness(metrics, served(with_section(contract, edited), "1"))
    checked = 0
    for stage, attributes in edited["reference"].items():
        for attribute, reference in attributes.items():
            for group, figures in reference["groups"].items():
                labels = {"attribute": attribute, "group": group, "stage": stage}
                rate = metrics.registry.get_sample_value(RATE, {**labels, "model_version": "1"})
                ratio = metrics.registry.get_sample_value(RATIO, {**labels, "model_version": "1"})
                assert rate == pytest.approx(figures["flag_rate"])
                if figures["small"] or figures["ratio"] is None:
                    assert ratio is None  # no reference for a small group: never an alert
                else:
                    assert ratio == pytest.approx(figures["ratio"])
                    checked += 1
    labels = {"attribute": "gender", "group": "female", "stage": "enrollment"}
    assert metrics.registry.get_sample_value(RATIO, {**labels, "model_version": "1"}) is None
    assert checked > 40


def test_hot_reload_starts_the_new_versions_counters_and_references(
    metrics: ConsumerMetrics, contract: Contract, section: dict[str, Any], data_path: Path
) -> None:
    v1 = served(with_section(contract, section), "1")
    v2 = served(with_section(contract, scaled_reference(section, 2.0)), "2")
    h = Harness(metrics, v1)
    h.batch(dataset_records(data_path, 40), first_sequence=1)
    before = samples(metrics, SCORED)
    assert sum(v for k, v in before.items() if k[0] == "gender" and k[3] == "1") == 40

    h.holder.offer(v2)  # no batch in flight: swapped in at once
    scored = samples(metrics, SCORED)
    v2_series = {k: v for k, v in scored.items() if k[3] == "2"}
    # Created at zero for every label the definitions allow, at every stage.
    assert v2_series
    assert set(v2_series.values()) == {0.0}
    genders = {k[1] for k in v2_series if k[0] == "gender"}
    assert genders == {"female", "male", "unknown"}
    assert {k[2] for k in v2_series} == set(STAGES)
    ratios = samples(metrics, RATIO)
    for key, value in ratios.items():
        if key[3] == "2":
            assert value == pytest.approx(2 * ratios[(*key[:3], "1")], rel=1e-5)

    h.batch(dataset_records(data_path, 25, start=40), first_sequence=100)
    after = samples(metrics, SCORED)
    assert sum(v for k, v in after.items() if k[0] == "gender" and k[3] == "2") == 25
    # The previous version's series stop growing; they are not mixed with the new one's.
    assert {k: v for k, v in after.items() if k[3] == "1"} == {
        k: v for k, v in before.items() if k[3] == "1"
    }


def test_a_version_without_fairness_groups_exports_none(
    metrics: ConsumerMetrics, fake_served: ServedModel, log_lines: Any
) -> None:
    assert fake_served.contract.fairness is None
    h = Harness(metrics, fake_served)
    h.batch([orjson.dumps(sample_record(1))])
    assert len(h.outputs(PREDICTIONS)) == 1
    assert samples(metrics, SCORED) == {}
    assert "fairness_groups_absent" in log_lines.getvalue()


@pytest.mark.property
@given(
    rows=arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.just(len(ATTRIBUTE_NAMES))),
        elements=st.one_of(
            st.floats(allow_nan=True, allow_infinity=True),
            st.sampled_from([0.0, 1.0, 2.0, 17.0, 20.5, 35.0, 41.0, -1.0, 1e9]),
        ),
    ),
    data=st.data(),
)
def test_labels_stay_bounded_and_every_row_counts_once(
    rows: np.ndarray, data: st.DataObject, contract: Contract, section: dict[str, Any]
) -> None:
    metrics = ConsumerMetrics(CollectorRegistry())
    rates = GroupRates(with_section(contract, section), "1", metrics)
    stages = data.draw(st.lists(st.sampled_from(STAGES), min_size=len(rows), max_size=len(rows)))
    flags = data.draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))
    rates.add(rows, flags, stages)
    scored, flagged = samples(metrics, SCORED), samples(metrics, FLAGGED)
    specs = {s["name"]: s for s in section["definitions"]["groups"]}
    for attribute in rates.attributes:
        allowed = set(rates.labels_of(attribute))
        assert {k[1] for k in scored if k[0] == attribute} == allowed  # no label outside them
        assert sum(v for k, v in scored.items() if k[0] == attribute) == len(rows)
        assert sum(v for k, v in flagged.items() if k[0] == attribute) == sum(flags)
        # The vectorised count agrees with the per-record rule, row by row.
        column = ATTRIBUTE_NAMES.index(specs[attribute]["column"])
        for stage in STAGES:
            expected: dict[str, int] = {}
            for row, row_stage in zip(rows, stages, strict=True):
                if row_stage == stage:
                    label = label_from_spec(specs[attribute], row[column])
                    expected[label] = expected.get(label, 0) + 1
            for group in allowed:
                assert scored[(attribute, group, stage, "1")] == expected.get(group, 0)


def _gender(section: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = section["definitions"]["groups"][0]
    return spec


def _reference(section: dict[str, Any]) -> dict[str, Any]:
    groups: dict[str, Any] = section["reference"]["enrollment"]["gender"]["groups"]
    return groups


BREAKAGES: dict[str, tuple[Any, str]] = {
    "unknown column": (lambda s: _gender(s).update(column="Shoe size"), "not an attribute"),
    "label with spaces": (lambda s: _gender(s)["values"].update({"0": "Has Space"}), "labels"),
    "unknown as a label": (lambda s: _gender(s)["values"].update({"2": "unknown"}), "reserved"),
    "other schema": (lambda s: s["definitions"].update(schema="other"), "fairness-groups/1"),
    "undefined group": (
        lambda s: _reference(s).update(
            nonbinary={"count": 1, "flagged": 0, "flag_rate": 0.0, "ratio": 0.0, "small": True}
        ),
        "unknown labels",
    ),
    "unknown stage": (lambda s: s["reference"].update(third_year={}), "unknown stage"),
    "rate above 1": (lambda s: _reference(s)["male"].update(flag_rate=1.5), "flag_rate"),
    "unknown excluded": (
        lambda s: s.update(excluded_features=["Shoe size"]),
        "excluded_features",
    ),
    "other variant": (lambda s: s.update(sensitive_features="maybe"), "sensitive_features"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_broken_fairness_section_breaks_the_contract(
    contract: Contract, section: dict[str, Any], breakage: str
) -> None:
    change, words = BREAKAGES[breakage]
    broken = json.loads(json.dumps(section))
    change(broken)
    with pytest.raises(ContractError, match=words):
        with_section(contract, broken)


def test_the_loader_accepts_a_sound_section_and_refuses_a_broken_one(
    registry_uri: str,
    built_model: BuiltModel,
    section: dict[str, Any],
    tmp_path: Path,
    metrics: ConsumerMetrics,
) -> None:
    name = "student-dropout-fairness"
    good = edit_contract(copy_model(built_model.path, tmp_path / "good"), fairness=section)
    register_model_dir(good, tracking_uri=registry_uri, name=name)
    holder = ModelHolder()
    loader = ModelLoader(
        tracking_uri=registry_uri,
        model_name=name,
        model_alias="champion",
        cache_dir=tmp_path / "cache",
        max_record_bytes=64 * 1024,
    )
    poller = ModelPoller(loader, holder, interval_seconds=60, metrics=metrics)
    assert poller.poll_once() is LoadOutcome.SUCCESS
    model = holder.for_next_batch()
    assert model is not None
    rates = GroupRates.for_model(model.contract, model.version, metrics)
    assert rates is not None
    assert "age_band" in rates.attributes

    broken = json.loads(json.dumps(section))
    broken["definitions"]["groups"][1]["labels"][0] = "Seventeen To Twenty"
    bad = edit_contract(copy_model(built_model.path, tmp_path / "bad"), fairness=broken)
    register_model_dir(bad, tracking_uri=registry_uri, name=name)
    assert poller.poll_once() is LoadOutcome.INCOMPATIBLE
    assert holder.for_next_batch() is model  # the sound version keeps serving
