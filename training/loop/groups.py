"""Realized fairness of the live model: true and false positive rates and the flag rate per
student group, from captured predictions joined with outcomes.

Groups come from the captured attributes and the plain JSON group definitions a model's contract
carries (common/groups.py, the consumer's own rule): `label_groups` adds one `group:<name>`
column per definition to a captures frame, `unknown` where the record did not send the
attribute. The join keeps those columns (training/loop/join.py).

Per group of students (attribute x label) and per roll-up (each version over all stages, each
stage over all versions, and everything): count, dropouts, flagged, TPR (dropouts flagged),
FPR (others flagged), flag rate, each with a seeded percentile-bootstrap interval over the
group's own rows. Per attribute, the realized equalized-odds difference (the larger of the TPR
and FPR spreads) between the groups that are not small. Labelled samples are small: a group
under `min_count` rows or `min_per_class` of either class is `small_sample` (its figures are
still given, with their wide intervals) and left out of the difference; `unknown` is shown and
never compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Unpack

import numpy as np
import numpy.typing as npt
import pandas as pd

from common.groups import UNKNOWN, document_unknown, group_specs, label_values, spec_labels
from training.loop import metrics as m
from training.loop.join import GROUP_COLUMN_PREFIX
from training.loop.quality import (
    ALL,
    CONFIDENCE,
    MIN_COUNT,
    MIN_PER_CLASS,
    Metric,
    SampleOptions,
    group_keys,
    group_seed,
    sample_counts,
    select,
)

GROUP_METRICS: Final = ("tpr", "fpr", "flag_rate")


@dataclass(frozen=True)
class GroupQuality:
    version: str
    stage: str
    attribute: str
    group: str
    count: int
    positives: int
    flagged: int
    small_sample: bool
    tpr: Metric
    fpr: Metric
    flag_rate: Metric
    n_bootstrap: int
    notes: tuple[str, ...] = field(default=())

    def metrics(self) -> dict[str, Metric]:
        return {name: getattr(self, name) for name in GROUP_METRICS}


@dataclass(frozen=True)
class AttributeGap:
    """The realized equalized-odds difference of one attribute (NaN when fewer than two groups
    are large enough to compare)."""

    version: str
    stage: str
    attribute: str
    eo_difference: float
    compared_groups: tuple[str, ...]


def label_groups(frame: pd.DataFrame, document: Mapping[str, Any]) -> pd.DataFrame:
    """`frame` with one `group:<name>` label column per definition of `document`."""
    unknown = document_unknown(document)
    columns: dict[str, npt.NDArray[np.object_]] = {}
    for spec in group_specs(document):
        name = f"{GROUP_COLUMN_PREFIX}{spec['name']}"
        column = spec["column"]
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype="float64")
            columns[name] = label_values(spec, values, unknown)
        else:  # no record sent the attribute
            columns[name] = np.full(len(frame), unknown, dtype=object)
    return frame.assign(**columns)


def attributes_of(document: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(name, every label it can take) per definition, in the document's order."""
    unknown = document_unknown(document)
    return [(str(s["name"]), spec_labels(s, unknown)) for s in group_specs(document)]


def quality_by_student_group(
    joined: pd.DataFrame,
    attributes: Sequence[tuple[str, tuple[str, ...]]],
    **options: Unpack[SampleOptions],
) -> tuple[list[GroupQuality], list[AttributeGap]]:
    """Per roll-up of a joined frame (with `group:` columns), each group's figures and each
    attribute's gap. Groups with no joined row are left out."""
    reports: list[GroupQuality] = []
    gaps: list[AttributeGap] = []
    keys = [(v, s) for v, s in group_keys(joined) if ALL in (v, s)] if len(joined) else []
    for version, stage in keys:
        rows = select(joined, version, stage)
        for attribute, labels in attributes:
            column = rows[f"{GROUP_COLUMN_PREFIX}{attribute}"].to_numpy()
            found = []
            for group in labels:
                members = column == group
                if not members.any():
                    continue
                found.append(
                    _group(
                        rows["y_true"].to_numpy()[members],
                        rows["at_risk"].to_numpy()[members],
                        (version, stage, attribute, group),
                        **options,
                    )
                )
            reports += found
            gaps.append(_gap(version, stage, attribute, found))
    return reports, gaps


def _group(
    y_true: npt.ArrayLike,
    at_risk: npt.ArrayLike,
    where: tuple[str, str, str, str],
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    min_count: int = MIN_COUNT,
    min_per_class: int = MIN_PER_CLASS,
) -> GroupQuality:
    version, stage, attribute, group = where
    y = np.asarray(y_true, dtype=np.int64)
    d = np.asarray(at_risk, dtype=bool)
    counts, notes = sample_counts(y, d, min_count=min_count, min_per_class=min_per_class)
    n, positives = counts["count"], counts["positives"]
    negatives = n - positives
    if positives == 0:
        notes.append("TPR undefined: no dropout in this group")
    if negatives == 0:
        notes.append("FPR undefined: only dropouts in this group")
    point = m.confusion(y[None, :], d[None, :])
    values = {
        "tpr": float(m.recall(point)[0]),
        "fpr": float(_fpr(point)[0]),
        "flag_rate": counts["flagged"] / n,
    }
    # A stable seed per group: adding a group or a version does not move another's interval.
    rng = group_seed(seed, f"{version}\x00{attribute}\x00{group}", stage)
    draws: dict[str, list[m.FloatArray]] = {name: [] for name in GROUP_METRICS}
    for size in m.chunks(n_bootstrap, n):
        index = rng.integers(0, n, size=(size, n))
        confusion = m.confusion(y[index], d[index])
        draws["tpr"].append(m.recall(confusion))
        draws["fpr"].append(_fpr(confusion))
        draws["flag_rate"].append(d[index].mean(axis=1))
    figures = {}
    for name in GROUP_METRICS:
        samples = np.concatenate(draws[name]) if draws[name] else np.empty(0)
        figures[name] = Metric(values[name], *m.percentile_interval(samples, confidence))
    return GroupQuality(
        version=version,
        stage=stage,
        attribute=attribute,
        group=group,
        n_bootstrap=n_bootstrap,
        notes=tuple(notes),
        **counts,
        **figures,
    )


def _fpr(c: m.Confusion) -> m.FloatArray:
    out = np.full(c.fp.shape, np.nan)
    np.divide(c.fp, c.fp + c.tn, out=out, where=(c.fp + c.tn) > 0)
    return out


def _gap(version: str, stage: str, attribute: str, groups: list[GroupQuality]) -> AttributeGap:
    compared = [
        g
        for g in groups
        if not g.small_sample
        and g.group != UNKNOWN
        and math.isfinite(g.tpr.value)
        and math.isfinite(g.fpr.value)
    ]
    names = tuple(g.group for g in compared)
    if len(compared) < 2:
        return AttributeGap(version, stage, attribute, math.nan, names)
    tpr = [g.tpr.value for g in compared]
    fpr = [g.fpr.value for g in compared]
    spread = max(max(tpr) - min(tpr), max(fpr) - min(fpr))
    return AttributeGap(version, stage, attribute, float(spread), names)
