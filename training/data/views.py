"""Views of a frame of the 36 UCI attributes (common/attributes.py): the same students as seen
at an earlier stage, or with only some attributes known, and wire records as a model frame."""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, Stage, attributes_known_at


def stage_view(features: pd.DataFrame, stage: Stage) -> pd.DataFrame:
    """The same students as they look at `stage`: later attributes blanked out (NaN)."""
    view = features.copy()
    later = [a.name for a in ATTRIBUTES if a.name not in attributes_known_at(stage)]
    view[later] = np.nan
    return view


def subset_view(features: pd.DataFrame, keep: tuple[str, ...]) -> pd.DataFrame:
    """The same students with only `keep` known, e.g. the seed's 7-attribute records."""
    view = features.copy()
    view[[c for c in view.columns if c not in keep]] = np.nan
    return view


def records_to_frame(records: list[dict[str, float]]) -> pd.DataFrame:
    """Wire-format `student_features` objects as the model's input frame (NaN = missing)."""
    frame = pd.DataFrame.from_records(records, columns=list(ATTRIBUTE_NAMES))
    return frame.astype("float64")
