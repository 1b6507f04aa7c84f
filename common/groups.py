"""Student groups from their plain JSON form: the per-record labelling rule every part shares.

A model's contract carries the fairness group definitions it was audited with as a JSON
document (`schema` "fairness-groups/1", `unknown`, `groups`). The consumer labels each scored
record with them, the learning loop labels captured records, and training writes the document;
this module is the reading of that document alone. It shares no code with the typed definitions
in `training/fairness/groups.py` (the tests check both give identical labels on the UCI data).

A definition maps one UCI column to a small, fixed set of labels:

- `values` (integer code as a string -> label; any other code gets `other` if given, else
  `unknown`), or
- `bins` with `labels` (left-closed bands `bins[i] <= value < bins[i+1]`, the last open above;
  a value below `bins[0]` is `unknown`).

A missing, non-numeric or non-finite value is always `unknown`. So a label is always one of
`spec_labels(spec)`: bounded, whatever a record holds (Prometheus label values stay bounded).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

UNKNOWN: Final = "unknown"
JSON_SCHEMA: Final = "fairness-groups/1"
NAME_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]*$")
# Labels go into Prometheus label values and (sanitised) MLflow metric names: keep them short.
LABEL_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9_+\-]{0,31}$")
# Names that would collide with the audit's own metric name parts.
RESERVED_NAMES: Final = frozenset({"worst", "gate"})


def canonical_code(value: object) -> str | None:
    """A categorical cell as the integer string the `values` tables use ("1" for 1, 1.0, " 1");
    None when missing or not an integer code."""
    if isinstance(value, bool):
        return str(int(value))
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != round(number):
        return None
    return str(int(number))


def label_from_spec(spec: Mapping[str, Any], value: object, unknown: str = UNKNOWN) -> str:
    """The label of one cell by a plain-dict definition: the per-record rule."""
    if "bins" in spec:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return unknown
        if not math.isfinite(number):
            return unknown
        index = bisect.bisect_right(spec["bins"], number) - 1
        return str(spec["labels"][index]) if index >= 0 else unknown
    code = canonical_code(value)
    if code is None:
        return unknown
    table: Mapping[str, str] = spec["values"]
    return table.get(code, spec.get("other") or unknown)


def spec_labels(spec: Mapping[str, Any], unknown: str = UNKNOWN) -> tuple[str, ...]:
    """Every label a definition can give, in display order, `unknown` last."""
    if "bins" in spec:
        found = [str(label) for label in spec["labels"]]
    else:
        found = list(dict.fromkeys(str(label) for label in spec["values"].values()))
        other = spec.get("other")
        if other and other not in found:
            found.append(str(other))
    return (*found, unknown)


def label_values(
    spec: Mapping[str, Any], values: npt.ArrayLike, unknown: str = UNKNOWN
) -> npt.NDArray[np.object_]:
    """`label_from_spec` of every value of a numeric column, computed once per distinct value
    (a batch of records holds few distinct ages or codes, so this is cheap)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        return np.empty(0, dtype=object)
    distinct, inverse = np.unique(array, return_inverse=True)  # NaNs collapse into one
    labels = np.array([label_from_spec(spec, v, unknown) for v in distinct.tolist()], dtype=object)
    return labels[inverse.ravel()]


def group_specs(document: Any) -> list[dict[str, Any]]:
    """The `groups` of a definitions document, after a check of its overall shape."""
    if not isinstance(document, dict) or document.get("schema") != JSON_SCHEMA:
        raise ValueError(f"not a fairness groups document (schema {JSON_SCHEMA!r} expected)")
    groups = document.get("groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise ValueError("fairness groups document: 'groups' must be a list of objects")
    return groups


def document_unknown(document: Mapping[str, Any]) -> str:
    return str(document.get("unknown", UNKNOWN))


def assign_groups_from_json(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """One column of labels per definition of the JSON `text`, record by record with
    `label_from_spec`. Raises ValueError when a definition's column is not in `frame`."""
    document = json.loads(text)
    groups = group_specs(document)
    unknown = document_unknown(document)
    check_columns(frame, [(str(g["name"]), str(g["column"])) for g in groups])
    columns = {
        str(g["name"]): [label_from_spec(g, v, unknown) for v in frame[g["column"]].tolist()]
        for g in groups
    }
    return pd.DataFrame(columns, index=frame.index, dtype=object)


def check_columns(frame: pd.DataFrame, wanted: Sequence[tuple[str, str]]) -> None:
    """Raises ValueError when group names repeat or a group's column is not in `frame`."""
    names = [name for name, _ in wanted]
    if len(set(names)) != len(names):
        raise ValueError(f"fairness group names repeat: {names}")
    missing = [f"{column!r} (for {name})" for name, column in wanted if column not in frame]
    if missing:
        raise ValueError(f"columns missing for fairness groups: {', '.join(missing)}")


# -- the rules of a document a model carries -----------------------------------------------------


def document_problems(document: Any, columns: Sequence[str]) -> list[str]:
    """Every broken rule of a definitions document whose definitions read `columns`; empty
    means valid. What the consumer relies on: known columns, distinct snake_case names, short
    labels, `unknown` reserved, integer codes, finite increasing bins with one label each."""
    try:
        groups = group_specs(document)
    except ValueError as exc:
        return [str(exc)]
    unknown = document.get("unknown", UNKNOWN)
    if unknown != UNKNOWN:
        return [f"fairness groups: 'unknown' must be {UNKNOWN!r}"]
    problems: list[str] = []
    names = [g.get("name") for g in groups]
    if not groups:
        problems.append("fairness groups: at least one group")
    if len(set(map(str, names))) != len(names):
        problems.append(f"fairness groups: names repeat ({names})")
    for spec in groups:
        problems += _spec_problems(spec, frozenset(columns))
    return problems


def _spec_problems(spec: Mapping[str, Any], columns: frozenset[str]) -> list[str]:
    name = spec.get("name")
    where = f"fairness group {name!r}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or name in RESERVED_NAMES:
        return [f"{where}: the name must be snake_case and not reserved"]
    if spec.get("column") not in columns:
        return [f"{where}: column {spec.get('column')!r} is not an attribute of the model"]
    if ("values" in spec) == ("bins" in spec):
        return [f"{where}: give exactly one of values or bins"]
    problems = _values_problems(spec) if "values" in spec else _bins_problems(spec)
    if problems:
        return [f"{where}: {p}" for p in problems]
    labels = spec_labels(spec)
    bad = [label for label in labels if not LABEL_PATTERN.match(label)]
    if bad:
        return [f"{where}: labels {bad} are not short lowercase labels"]
    if UNKNOWN in labels[:-1]:
        return [f"{where}: {UNKNOWN!r} is reserved for missing values"]
    return []


def _values_problems(spec: Mapping[str, Any]) -> list[str]:
    values, other = spec["values"], spec.get("other")
    if not isinstance(values, dict) or not values:
        return ["values must be a non-empty object"]
    if any(canonical_code(code) != code for code in values):
        return ["codes must be integer strings"]
    if not all(isinstance(label, str) for label in values.values()):
        return ["labels must be strings"]
    if other is not None and not isinstance(other, str):
        return ["other must be a string"]
    if "labels" in spec:
        return ["labels go with bins, not values"]
    return []


def _bins_problems(spec: Mapping[str, Any]) -> list[str]:
    bins, labels = spec["bins"], spec.get("labels")
    if not isinstance(bins, list) or not isinstance(labels, list):
        return ["bins and labels must be lists"]
    if not bins or len(bins) != len(labels):
        return ["bins and labels need the same, non-zero length"]
    numbers = [b for b in bins if isinstance(b, int | float) and not isinstance(b, bool)]
    if len(numbers) != len(bins) or not all(math.isfinite(b) for b in numbers):
        return ["bins must be finite numbers"]
    if numbers != sorted(set(numbers)):
        return ["bins must increase strictly"]
    if not all(isinstance(label, str) for label in labels):
        return ["labels must be strings"]
    if "other" in spec:
        return ["other goes with values, not bins"]
    return []
