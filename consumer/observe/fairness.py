"""Per-group flag rates on the stream: how many students of each group the served model scored
and flagged, beside the rates it showed on held-out data (docs/fairness.md).

The served model's contract carries the student groups it was audited with (`fairness`,
common/contract.py). For every scored record of a batch, each definition gives one label of a
fixed set (common/groups.py, the same rule the learning loop applies to captures), and the
counters `group_scored` / `group_flagged` grow per attribute, label, stage and model version.
When a version is swapped in, its reference gauges are set from its contract and its counters
created at zero, so PromQL's increase() sees a new version's series from its first record and a
previous version's series simply stop growing. Labels cannot grow with the data: a value the
definitions do not know is `unknown`, and so is a missing attribute.

Counting is numpy over the batch: each column's distinct values are labelled once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from common.attributes import STAGES
from common.contract import Contract
from common.groups import UNKNOWN, label_from_spec, spec_labels
from consumer.observe.metrics import ConsumerMetrics

log = structlog.get_logger("consumer.observe.fairness")


@dataclass(frozen=True)
class _Attribute:
    name: str
    column: int
    spec: dict[str, Any]
    labels: tuple[str, ...]  # every label it can give, `unknown` last


class GroupRates:
    """The per-group counters of one served model version."""

    def __init__(self, contract: Contract, version: str, metrics: ConsumerMetrics) -> None:
        section = contract.fairness_section()
        if section is None:
            raise ValueError("the contract has no fairness section")
        column_of = {name: i for i, name in enumerate(contract.attribute_names)}
        self.version = version
        self._attributes = [
            _Attribute(str(s["name"]), column_of[s["column"]], s, spec_labels(s))
            for s in section.specs()
        ]
        self._stage_index: dict[str, int] = {stage: i for i, stage in enumerate(STAGES)}
        self._metrics = metrics
        self._scored: dict[tuple[str, str, str], Any] = {}
        self._flagged: dict[tuple[str, str, str], Any] = {}
        groups = metrics.groups
        for attribute in self._attributes:
            for group in attribute.labels:
                for stage in STAGES:
                    key = (attribute.name, group, stage)
                    labels = {"attribute": attribute.name, "group": group, "stage": stage}
                    self._scored[key] = groups.scored.labels(**labels, model_version=version)
                    self._flagged[key] = groups.flagged.labels(**labels, model_version=version)
                    self._scored[key].inc(0)
                    self._flagged[key].inc(0)
        self._set_references(section.reference)

    @classmethod
    def for_model(
        cls, contract: Contract, version: str, metrics: ConsumerMetrics
    ) -> GroupRates | None:
        """The counters of a version, or None when its contract carries no fairness groups."""
        if contract.fairness is None:
            log.warning("fairness_groups_absent", model_version=version)
            return None
        return cls(contract, version, metrics)

    @property
    def attributes(self) -> list[str]:
        return [a.name for a in self._attributes]

    def labels_of(self, attribute: str) -> tuple[str, ...]:
        return next(a.labels for a in self._attributes if a.name == attribute)

    def _set_references(self, reference: dict[str, Any]) -> None:
        for stage, attributes in reference.items():
            for name, attribute in attributes.items():
                for group, figures in attribute.groups.items():
                    labels = {
                        "attribute": name,
                        "group": group,
                        "stage": stage,
                        "model_version": self.version,
                    }
                    self._metrics.groups.reference_flag_rate.labels(**labels).set(figures.flag_rate)
                    # A ratio resting on a small group is noise: no reference, so no alert.
                    if not figures.small and figures.ratio is not None:
                        self._metrics.groups.reference_flag_ratio.labels(**labels).set(
                            figures.ratio
                        )

    def add(self, rows: np.ndarray, at_risk: Sequence[bool], stages: Sequence[str | None]) -> None:
        """Counts scored rows (contract attribute order), their decisions and stages."""
        n = rows.shape[0]
        if n == 0:
            return
        stage_codes = np.fromiter(
            (self._stage_index.get(s or "", -1) for s in stages), dtype=np.int64, count=n
        )
        flags = np.asarray(at_risk, dtype=np.float64)
        known = stage_codes >= 0  # a scored record always has a stage; guard all the same
        width = len(STAGES)
        for attribute in self._attributes:
            codes = self._codes(attribute, rows[:, attribute.column])
            keys = codes[known] * width + stage_codes[known]
            size = len(attribute.labels) * width
            scored = np.bincount(keys, minlength=size)
            flagged = np.bincount(keys, weights=flags[known], minlength=size)
            for key in np.flatnonzero(scored).tolist():
                group, stage = attribute.labels[key // width], STAGES[key % width]
                self._scored[(attribute.name, group, stage)].inc(int(scored[key]))
                if flagged[key]:
                    self._flagged[(attribute.name, group, stage)].inc(int(flagged[key]))

    @staticmethod
    def _codes(attribute: _Attribute, values: np.ndarray) -> np.ndarray:
        """The position of each value's label in `attribute.labels` (labelled once per distinct
        value; anything unexpected counts as `unknown`, the last position)."""
        position = {label: i for i, label in enumerate(attribute.labels)}
        unknown = position[UNKNOWN]
        distinct, inverse = np.unique(values, return_inverse=True)
        codes = np.array(
            [position.get(label_from_spec(attribute.spec, v), unknown) for v in distinct.tolist()],
            dtype=np.int64,
        )
        result: np.ndarray = codes[inverse.ravel()]
        return result
