"""Synthetic scored students for the fairness tests: known groups, known (or no) planted bias."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Scored:
    y: np.ndarray  # 1 = dropout
    prob: np.ndarray  # predicted dropout probability
    groups: pd.DataFrame  # one column of string labels per attribute


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def scored(
    n: int = 3000,
    *,
    seed: int = 0,
    shift: float = 0.0,
    shifted_group: str = "south",
    base_rate: float = 0.3,
) -> Scored:
    """Students with a `gender` and a `region` attribute, the same dropout rate in every group,
    and a score that separates dropouts from the rest equally well everywhere, except that
    `shift` logits are added to every score of `region == shifted_group` (the planted bias:
    more of that group is flagged, dropouts and non-dropouts alike, so its FPR rises)."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], size=n)
    region = rng.choice(["north", "south", "east"], size=n)
    y = rng.binomial(1, base_rate, size=n)
    logit = -1.2 + 2.4 * y + rng.normal(0.0, 1.0, size=n)
    logit = logit + shift * (region == shifted_group)
    groups = pd.DataFrame({"gender": gender, "region": region})
    return Scored(y=y, prob=_sigmoid(logit), groups=groups)


def cohorts(spec: dict[str, tuple[int, float, float]], *, seed: int = 0) -> Scored:
    """One attribute, `cohort`: label -> (size, dropout rate, logit shift of its scores)."""
    rng = np.random.default_rng(seed)
    labels, ys, probs = [], [], []
    for label, (size, rate, shift) in spec.items():
        y = rng.binomial(1, rate, size=size)
        logit = -1.2 + 2.4 * y + rng.normal(0.0, 1.0, size=size) + shift
        labels.append(np.full(size, label, dtype=object))
        ys.append(y)
        probs.append(_sigmoid(logit))
    groups = pd.DataFrame({"cohort": np.concatenate(labels)})
    return Scored(y=np.concatenate(ys), prob=np.concatenate(probs), groups=groups)
