"""Which captured prediction each outcome labels: the join rule.

Rule (per model name; the monitor reads one model at a time):

1. Only predictions count: dead letters never do (they carry no probability).
2. A prediction counts only if it was made STRICTLY BEFORE the outcome's decision date:
   `scored_at` (UTC) earlier than midnight UTC at the start of `decision_date`. A prediction on
   the decision day or after it never counts: it may already reflect the decision.
3. For each student with an outcome and for each stage (enrollment, first_semester,
   second_semester), the student's LAST such prediction at that stage (latest `scored_at`; ties
   by source position) is the one measured. A student scored several times at one stage, even
   by different model versions, counts once, for the version that made that last prediction.

The result has one row per (student, stage) with the model version, `y_true` (1 for Dropout,
0 for Graduate or Enrolled), the probability and the decision (`at_risk`) the model made, and
any student-group label columns (`group:<name>`, training/loop/groups.py) the captures carried.

Predictions still waiting for an outcome (`pending_predictions`) follow the same rule without
a decision date: the last prediction per student and stage, for students with no outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pandas as pd

from common.attributes import STAGE_RANK

POSITIVE_OUTCOME: Final = "Dropout"
# A prediction still waiting for its outcome; a joined row is the same prediction and its outcome.
PENDING_COLUMNS: Final = (
    "student_id",
    "stage",
    "model_name",
    "model_version",
    "scored_at",
    "probability",
    "threshold",
    "at_risk",
)
JOINED_COLUMNS: Final = (*PENDING_COLUMNS, "y_true", "outcome", "decision_date", "outcome_source")
# Columns of captures that travel with each joined row: the student's group labels.
GROUP_COLUMN_PREFIX: Final = "group:"
_ORDER: Final = ["scored_at", "shard_id", "sequence_number", "sub_sequence_number"]
_GROUP: Final = ["model_name", "student_id", "stage"]


@dataclass(frozen=True)
class JoinCounts:
    """How the students with an outcome fared in the join."""

    students_with_outcome: int
    joined_students: int  # at least one prediction before the decision
    predicted_only_after_decision: int  # captured, but never before the decision
    never_captured: int  # an outcome, and no prediction at all


@dataclass(frozen=True)
class Joined:
    frame: pd.DataFrame
    counts: JoinCounts


def _predictions(captures: pd.DataFrame) -> pd.DataFrame:
    keep = (captures["outcome"] == "prediction") & captures["student_id"].notna()
    return captures.loc[keep]


def _last_per_stage(predictions: pd.DataFrame) -> pd.DataFrame:
    ordered = predictions.sort_values(_ORDER, kind="mergesort")
    return ordered.groupby(_GROUP, sort=False).tail(1)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    stage_rank = frame["stage"].map(STAGE_RANK)
    order = frame.assign(_rank=stage_rank).sort_values(
        ["model_name", "student_id", "_rank"], kind="mergesort"
    )
    return order.drop(columns="_rank").reset_index(drop=True)


def join_outcomes(captures: pd.DataFrame, outcomes: pd.DataFrame) -> Joined:
    """Apply the rule to a captures frame (`read_captures`) and outcomes (`read_outcomes`)."""
    predictions = _predictions(captures)
    labelled = predictions.merge(
        outcomes[["student_id", "outcome", "decision_date", "source"]].rename(
            columns={"outcome": "label", "source": "outcome_source"}
        ),
        on="student_id",
        how="inner",
        validate="many_to_one",  # read_outcomes leaves one row per student
    )
    before = labelled.loc[labelled["scored_at"] < labelled["decision_date"]]
    last = _last_per_stage(before)
    frame = (
        last.drop(columns="outcome")  # the capture's kind ("prediction"), not the label
        .assign(
            y_true=(last["label"] == POSITIVE_OUTCOME).astype("int64"),
            at_risk=last["at_risk"].astype(bool),
        )
        .rename(columns={"label": "outcome"})
    )
    groups = [c for c in frame.columns if str(c).startswith(GROUP_COLUMN_PREFIX)]
    frame = _sorted(frame.loc[:, [*JOINED_COLUMNS, *groups]])
    with_outcome = set(outcomes["student_id"])
    captured = set(predictions["student_id"])
    joined = set(frame["student_id"])
    counts = JoinCounts(
        students_with_outcome=len(with_outcome),
        joined_students=len(joined),
        predicted_only_after_decision=len((with_outcome & captured) - joined),
        never_captured=len(with_outcome - captured),
    )
    return Joined(frame=frame, counts=counts)


def pending_predictions(captures: pd.DataFrame, outcomes: pd.DataFrame) -> pd.DataFrame:
    """The last prediction per student and stage, for students without any outcome."""
    predictions = _predictions(captures)
    waiting = predictions.loc[~predictions["student_id"].isin(set(outcomes["student_id"]))]
    last = _last_per_stage(waiting)
    frame = last.assign(at_risk=last["at_risk"].astype(bool))
    return _sorted(frame.loc[:, list(PENDING_COLUMNS)])
