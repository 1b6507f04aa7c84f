"""Missingness augmentation: teach the model the partial records it will see in production.

Producers send what they know: at enrollment there are no curricular units, after the first
semester no second-semester ones, and any optional attribute may be absent. Each training
student is therefore copied: once complete, and `copies - 1` times as seen at a random stage
with a random share (up to `max_missing`) of the optional attributes removed. A share
(`pattern_share`) of those partial copies instead carries exactly one of the record `patterns`
known to be sent in production (the seed's 7-attribute record), so the model is trained for
the records it actually receives. Required attributes are never removed: the schema guarantees
them at scoring time.

It runs on training folds only (never on a validation fold or the held-out split), and the
copies of one student share a group id so grouped CV keeps them on one side of a split.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.attributes import BY_NAME, STAGES


def augment(
    x: pd.DataFrame,
    y: pd.Series,
    *,
    copies: int,
    max_missing: float,
    rng: np.random.Generator,
    patterns: tuple[tuple[str, ...], ...] = (),
    pattern_share: float = 0.0,
) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Return (features, target, groups) with `copies` rows per input row; copy 0 is unchanged."""
    n, columns = len(x), list(x.columns)
    values = x.to_numpy(dtype="float64")
    stage_of = np.array([STAGES.index(BY_NAME[c].stage) for c in columns])
    optional = np.array([not BY_NAME[c].required for c in columns])
    # True where a pattern leaves the attribute out.
    outside = np.array([[c not in p for c in columns] for p in patterns], dtype=bool)

    blocks = [values]
    for _ in range(copies - 1):
        row_stage = rng.integers(0, len(STAGES), size=n)
        masked = stage_of[None, :] > row_stage[:, None]
        rate = rng.uniform(0.0, max_missing, size=n)
        dropped = rng.random((n, len(columns))) < rate[:, None]
        masked |= dropped & optional[None, :]
        if len(patterns):
            chosen = rng.random(n) < pattern_share
            which = rng.integers(0, len(patterns), size=n)
            masked[chosen] = outside[which[chosen]] & optional[None, :]
        blocks.append(np.where(masked, np.nan, values))

    features = pd.DataFrame(np.vstack(blocks), columns=columns)
    target = pd.Series(np.tile(y.to_numpy(), copies), name=y.name)
    groups = np.tile(np.arange(n), copies)
    return features, target, groups
