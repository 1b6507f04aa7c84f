"""contract.json parsing: what makes a version incompatible, and what does not."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from common.attributes import ATTRIBUTE_NAMES as UCI_ATTRIBUTES
from common.contract import ContractError, parse_contract
from tests.support.model_builder import BuiltModel


@pytest.fixture
def raw(built_model: BuiltModel) -> dict[str, Any]:
    return copy.deepcopy(built_model.contract)


def parse(raw: dict[str, Any]) -> Any:
    return parse_contract(json.dumps(raw))


def test_the_test_models_contract_is_valid(raw: dict[str, Any]) -> None:
    contract = parse(raw)
    assert contract.attribute_names == list(UCI_ATTRIBUTES)
    assert contract.band_for(0.0) == "low"
    assert contract.band_for(0.2) == "medium"
    assert contract.band_for(0.42) == "high"
    assert contract.band_for(1.0) == "high"
    references, problems = contract.drift_references()
    assert set(references) == set(UCI_ATTRIBUTES)
    assert problems == {}


def _set(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target: Any = raw
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return raw


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("contract_version", 2, "contract_version"),
        ("contract_version", "1", "contract_version"),
        ("threshold", 1.0, "threshold"),
        ("threshold", 0, "threshold"),
        ("threshold", "0.4", "threshold"),
        ("threshold", KeyError, "threshold"),
        ("attributes.0.name", "Shoe size", "unknown attribute"),
        ("attributes.0.dtype", "str", "attributes"),
        ("attributes.0.categories", None, "categorical"),
        ("attributes.0.min", True, "attributes"),
        ("attributes.6.min", 300, "min"),
        ("attributes.0.stage", "graduation", "stage"),
        ("attributes.0.required", "yes", "required"),
        ("risk_bands.0.lower", 0.1, "cover"),
        ("risk_bands.1.lower", 0.25, "contiguous"),
        ("risk_bands.2.upper", 0.9, "cover"),
        ("input_example", [], "input_example"),
        ("expected_example_output", [0.5], "input_example"),
        ("top_k_factors", -1, "top_k_factors"),
    ],
)
def test_incompatible_contracts_are_refused(
    raw: dict[str, Any], path: str, value: Any, message: str
) -> None:
    with pytest.raises(ContractError, match=message):
        parse(_set(raw, path, value))


def test_duplicate_attributes_are_refused(raw: dict[str, Any]) -> None:
    raw["attributes"].append(raw["attributes"][0])
    with pytest.raises(ContractError, match="distinct"):
        parse(raw)


def test_not_json_is_refused() -> None:
    with pytest.raises(ContractError):
        parse_contract(b"{not json")


def test_extra_fields_are_ignored(raw: dict[str, Any]) -> None:
    raw["future_field"] = {"anything": 1}
    raw["attributes"][0]["description"] = "new in a later contract"
    assert parse(raw).threshold == raw["threshold"]


def test_an_unreadable_drift_reference_only_disables_drift(raw: dict[str, Any]) -> None:
    raw["reference"]["GDP"] = {"bins": [1, 2]}
    raw["reference"]["Course"] = {"edges": [3, 1], "proportions": [1.0]}
    raw["reference"]["Shoe size"] = {"edges": [0, 1], "proportions": [1.0]}
    contract = parse(raw)
    references, problems = contract.drift_references()
    assert set(problems) == {"GDP", "Course", "Shoe size"}
    assert "Inflation rate" in references
