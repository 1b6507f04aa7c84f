"""The champion gate: a registered version takes the alias only if it is at least as good.

Both the new version and the current champion are loaded from the registry and scored on the
same held-out split (same data, seed and size). The compared numbers are the held-out ROC-AUC
of complete records and of the two partial views (enrollment only, after the 1st semester),
and, when the run trains on several sources, the ROC-AUC on each source's own held-out
students (`source.<name>`): the alias moves when none of them falls below the champion's by
more than the tolerance, so a challenger better on UCI but worse on the institution's own
students is refused.
The first model is promoted; `force` lets a person override; every decision is written as
tags on the version and logged.

With a fairness configuration (training and `promote` always pass one), the same two versions
are also audited across student groups on the same held-out students and the alias moves only
when the fairness rule passes too (training/registry/fairness_gate.py): a challenger whose worst
disparity is worse than the champion's by more than a tolerance, or beyond a cap, is refused
unless forced. Its reason, naming the groups and figures, goes into `gate.reason` and the
`fairness.gate.*` tags.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from mlflow import MlflowClient

from training.config import TrainingSettings
from training.data.split import Split
from training.errors import RegistryError
from training.evaluation.fairness import FairnessConfig
from training.evaluation.metrics import evaluate, gate_scores
from training.fairness import FairnessAudit, FairnessDecision
from training.log import get_logger
from training.registry.client import LoadedModel, load_version, set_tags, version_by_alias
from training.registry.fairness_gate import judge_fairness

log = get_logger(__name__)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    new_scores: dict[str, float]
    champion_version: str | None
    champion_scores: dict[str, float] | None
    tolerance: float
    forced: bool
    new_report: dict[str, Any] = field(default_factory=dict)
    # The fairness half (None when the gate ran without a fairness configuration).
    fairness: FairnessDecision | None = None

    def tags(self) -> dict[str, Any]:
        tags: dict[str, Any] = {
            "gate.decision": "promoted" if self.promote else "refused",
            "gate.reason": self.reason,
            "gate.tolerance": self.tolerance,
            "gate.forced": str(self.forced).lower(),
            "gate.champion_version": self.champion_version or "none",
            "gate.decided_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        for stage, score in self.new_scores.items():
            tags[f"gate.new_roc_auc.{stage}"] = round(score, 6)
        for stage, score in (self.champion_scores or {}).items():
            tags[f"gate.champion_roc_auc.{stage}"] = round(score, 6)
        if self.fairness is not None:
            tags.update(self.fairness.figures)
        return tags


def decide(
    new_scores: dict[str, float],
    champion_scores: dict[str, float] | None,
    *,
    tolerance: float,
    force: bool,
) -> GateDecision:
    """Pure rule: promote when no score is below the champion's minus `tolerance`."""

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, new_scores, None, champion_scores, tolerance, force)

    if champion_scores is None:
        return decision(True, "first_model")
    worse = [
        f"{key} ({value:.3f} < champion {champion_scores[key]:.3f} - {tolerance:g})"
        for key, value in new_scores.items()
        if key in champion_scores and value < champion_scores[key] - tolerance
    ]
    # Per-source figures are named whatever the outcome: the institution's own students are
    # the figure a person reviewing the decision looks for first.
    sources = "; ".join(
        f"{key} {value:.3f} vs champion {champion_scores[key]:.3f}"
        for key, value in new_scores.items()
        if key.startswith("source.") and key in champion_scores
    )
    named = f" (per source: {sources})" if sources else ""
    if not worse:
        return decision(True, f"at_least_as_good{named}")
    if force:
        return decision(True, f"forced (worse on {'; '.join(worse)}){named}")
    return decision(False, f"worse on {'; '.join(worse)}{named}")


def run_gate(
    client: MlflowClient,
    settings: TrainingSettings,
    *,
    version: str,
    split: Split,
    force: bool,
    fairness: FairnessConfig | None = None,
    challenger_audit: FairnessAudit | None = None,
) -> GateDecision:
    """Score `version` and the champion from the registry, decide, record, move the alias.

    The model's name, its alias and the tolerance are the settings' (`model_name`,
    `model_alias`, `gate_tolerance`).
    `fairness`: also audit both across student groups and apply the fairness rule.
    `challenger_audit`: the audit of `version` on `split` when the caller already has it (the
    training job audited the very pipeline it registered, at the same threshold); it is used
    in place of a second audit of the same predictions."""
    name, alias, tolerance = settings.model_name, settings.model_alias, settings.gate_tolerance
    try:
        new = load_version(name, version)
        new_report = _report(new, split)
    except Exception as exc:
        # A version that cannot be loaded and scored here would fail in the consumer too.
        set_tags(client, name, version, {"gate.decision": "refused", "gate.reason": "unloadable"})
        log.error("gate_decision", model=name, version=version, decision="refused", error=str(exc))
        raise RegistryError(f"version {version} cannot be loaded and scored: {exc}") from exc
    new_scores = gate_scores(new_report)

    current = version_by_alias(client, name, alias)
    champion_scores: dict[str, float] | None = None
    champion: LoadedModel | None = None
    if current is not None and str(current.version) == str(version):
        result = GateDecision(
            True, "already_champion", new_scores, str(version), new_scores, tolerance, force
        )
    elif current is None:
        result = decide(new_scores, None, tolerance=tolerance, force=force)
    else:
        try:
            champion = load_version(name, str(current.version))
            champion_scores = gate_scores(_report(champion, split))
        except Exception as exc:  # noqa: BLE001 - any failure means the champion cannot be judged
            log.error("champion_unscorable", version=current.version, error=str(exc))
            reason = "champion_unscorable" + (" (forced)" if force else "")
            result = GateDecision(force, reason, new_scores, None, None, tolerance, force)
        else:
            result = decide(new_scores, champion_scores, tolerance=tolerance, force=force)
        result = replace(result, champion_version=str(current.version))

    result = replace(result, new_report=new_report)
    if fairness is not None and result.reason != "already_champion":
        judged = judge_fairness(
            new, champion, split, fairness, force=force, challenger_audit=challenger_audit
        )
        result = with_fairness(result, judged.decision)
    set_tags(client, name, version, result.tags())
    if result.promote and result.reason != "already_champion":
        client.set_registered_model_alias(name, alias, version)
        if current is not None:
            set_tags(client, name, str(current.version), {"gate.replaced_by": version})
    log.info(
        "gate_decision",
        model=name,
        version=version,
        alias=alias,
        decision="promoted" if result.promote else "refused",
        reason=result.reason,
        champion_version=result.champion_version,
        new_roc_auc=result.new_scores,
        champion_roc_auc=result.champion_scores,
        tolerance=tolerance,
        forced=force,
        fairness=None
        if result.fairness is None
        else result.fairness.figures["fairness.gate.decision"],
    )
    return result


def with_fairness(quality: GateDecision, fairness: FairnessDecision) -> GateDecision:
    """Both halves in one decision: the alias moves only when both pass (or are forced).

    The reason stays the quality reason when fairness passed plainly, and says what the
    fairness rule found otherwise."""
    outcome = fairness.figures["fairness.gate.decision"]
    if outcome == "passed":
        return replace(quality, fairness=fairness)
    if outcome == "forced":
        reason = f"{quality.reason}; fairness {fairness.reason}"
    elif quality.promote:
        reason = f"refused on fairness: {fairness.reason}"
    else:
        reason = f"{quality.reason}; fairness: {fairness.reason}"
    return replace(
        quality, promote=quality.promote and fairness.passed, reason=reason, fairness=fairness
    )


def _report(model: LoadedModel, split: Split) -> dict[str, Any]:
    return evaluate(
        model.probabilities, split.x_test, split.y_test, model.threshold, split.origin_test
    )
