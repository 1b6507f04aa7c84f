"""The fairness half of the champion gate, on the registered versions themselves.

Both the challenger and the champion are loaded from the registry (as for the quality half) and
audited on the same held-out students, with the same group definitions (the current settings'),
each at its own threshold; only the worst disparities matter here, so no bootstrap. The training
job hands in the challenger's audit it has just made of the same pipeline on the same students
(the same figures: tests/training/fairness check it), so only the champion is audited again. The
rule is training/fairness/gate.py (tolerance against the champion, an absolute cap, force); this
adds the groups behind each worst figure to the reason and to the version's tags, so a reader
learns which students are affected, not only which attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from training.data.split import Split
from training.evaluation.fairness import FairnessConfig, audit_model
from training.fairness import (
    DISPARITY_KINDS,
    FairnessAudit,
    FairnessDecision,
    describe_worst,
    fairness_decision,
)
from training.fairness.audit import DISPARITY_TITLES
from training.registry.client import LoadedModel


@dataclass(frozen=True)
class FairnessJudgement:
    decision: FairnessDecision
    challenger: FairnessAudit
    champion: FairnessAudit | None


def judge_fairness(
    new: LoadedModel,
    champion: LoadedModel | None,
    split: Split,
    config: FairnessConfig,
    *,
    force: bool,
    challenger_audit: FairnessAudit | None = None,
) -> FairnessJudgement:
    """Audit both versions on `split`'s held-out students and apply the fairness rule.

    `challenger_audit`: `new`'s audit on the same students, if the caller has it already."""
    mine = challenger_audit if challenger_audit is not None else _audit(new, split, config)
    theirs = None if champion is None else _audit(champion, split, config)
    decision = fairness_decision(
        mine.worst,
        None if theirs is None else theirs.worst,
        tolerance=config.tolerance,
        cap=config.caps,
        force=force,
        kinds=config.kinds,
    )
    return FairnessJudgement(_with_groups(decision, mine, theirs, config), mine, theirs)


def _audit(model: LoadedModel, split: Split, config: FairnessConfig) -> FairnessAudit:
    return audit_model(
        model.probabilities, split.x_test, split.y_test, model.threshold, config, n_bootstrap=0
    )


def _with_groups(
    decision: FairnessDecision,
    mine: FairnessAudit,
    theirs: FairnessAudit | None,
    config: FairnessConfig,
) -> FairnessDecision:
    figures = dict(decision.figures)
    named: list[str] = []
    for kind in config.kinds:
        for role, audited in (("challenger", mine), ("champion", theirs)):
            if audited is None:
                continue
            text = describe_worst(audited, audited.worst[kind])
            figures[f"fairness.gate.{role}.{kind}.groups"] = text or "none"
            if role == "challenger" and text:
                named.append(f"{DISPARITY_TITLES[kind]}: {text}")
    for kind in DISPARITY_KINDS:  # every kind is recorded, gated or not
        worst = mine.worst[kind]
        figures[f"fairness.worst.{kind}"] = f"{worst.value:.6g}"
    reason = decision.reason + (f" [groups: {'; '.join(named)}]" if named else "")
    figures["fairness.gate.reason"] = reason
    return replace(decision, reason=reason, figures=figures)
