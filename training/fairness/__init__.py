"""Fairness audit of the dropout-risk model across student groups (EU AI Act: high-risk).

Every model version is audited per group before it serves: `select_groups` + `assign_groups`
label the students, `audit_stages` measures rates and disparities at each scoring stage,
`fairness_decision` gates the version against the champion (whose worst disparities
`worst_from_metrics` reads back from its logged metrics) and a cap, and `stage_figure` /
`render_markdown_table` show the result. Self-contained on purpose: this package imports no
other `training` module (only `common`, whose `groups.py` holds the plain JSON labelling the
consumer and the learning loop use), so it can move with the training code.
Importing it does no work (matplotlib is only imported when a figure is drawn).
"""

from common.attributes import STAGES
from training.fairness.audit import (
    DISPARITY_KINDS,
    AttributeDisparity,
    FairnessAudit,
    GroupResult,
    StageAudit,
    WorstDisparity,
    audit,
    audit_stages,
    metric_safe,
    worst_from_metrics,
)
from training.fairness.describe import describe_worst
from training.fairness.gate import DEFAULT_GATE_KINDS, FairnessDecision, fairness_decision
from training.fairness.groups import (
    DEFAULT_GROUP_NAMES,
    UNKNOWN,
    GroupDefinition,
    assign_groups,
    assign_groups_from_json,
    available_groups,
    definitions_from_json,
    definitions_to_dicts,
    definitions_to_json,
    label_from_spec,
    select_groups,
)
from training.fairness.plots import audit_figures, render_markdown_table, stage_figure
from training.fairness.reference import live_reference

__all__ = [
    "DEFAULT_GATE_KINDS",
    "DEFAULT_GROUP_NAMES",
    "DISPARITY_KINDS",
    "STAGES",
    "UNKNOWN",
    "AttributeDisparity",
    "FairnessAudit",
    "FairnessDecision",
    "GroupDefinition",
    "GroupResult",
    "StageAudit",
    "WorstDisparity",
    "assign_groups",
    "assign_groups_from_json",
    "audit",
    "audit_figures",
    "audit_stages",
    "available_groups",
    "definitions_from_json",
    "definitions_to_dicts",
    "definitions_to_json",
    "describe_worst",
    "fairness_decision",
    "label_from_spec",
    "live_reference",
    "metric_safe",
    "render_markdown_table",
    "select_groups",
    "stage_figure",
    "worst_from_metrics",
]
