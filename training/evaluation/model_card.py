"""The model card: a short Markdown page logged with every chosen model (after Mitchell et
al., "Model Cards for Model Reporting"): what it does and is for, what it must not be used for,
who decides, its quality and its fairness across student groups, and its limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.attributes import REQUIRED, STAGES
from training.evaluation.fairness_report import NOTES as FAIRNESS_NOTES
from training.evaluation.report import NOTES, ModelRow, markdown_table
from training.fairness import FairnessAudit, render_markdown_table
from training.fairness.audit import DISPARITY_TITLES


@dataclass(frozen=True)
class FairnessFacts:
    """The fairness part of a card: the registered model's audit and how it compares."""

    audit: FairnessAudit
    groups: list[tuple[str, str, str]]  # name, column, description
    sensitive_features: str  # "with" or "without"
    excluded: list[str]  # attributes the model does not use as inputs
    comparison: str  # Markdown: every audited model's quality and worst disparities
    pair: str  # Markdown: the chosen kind with and without the sensitive attributes
    gate: dict[str, str] = field(default_factory=dict)  # fairness.gate.* tags
    min_group_size: int = 30
    tolerance: float = 0.0
    caps: dict[str, float] = field(default_factory=dict)
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class CardFacts:
    model_name: str
    version: str
    run_id: str
    model_kind: str
    contributions: str
    selection_policy: str
    data: dict[str, Any]  # origin, sha256, rows, labels (3-class counts)
    contract: dict[str, Any]
    rows: list[ModelRow]
    kept_features: int
    offered_features: int
    predict_ms_per_1000: float
    gate: dict[str, Any]  # decision, reason
    mode: str
    fairness: FairnessFacts | None = None


CONTRIBUTION_TEXT = {
    "saabas": (
        "XGBoost path attributions (`pred_contribs` with `approx_contribs=True`, the Saabas "
        "method). They add up exactly to the score's log-odds like TreeSHAP, but spread credit "
        "along each tree path instead of over all feature orderings. Exact TreeSHAP costs about "
        "ten times more per row, which would break the consumer's throughput budget "
        "(20,000 records/s per process including the top factors)."
    ),
    "tree_shap": "Exact TreeSHAP contributions from XGBoost (`pred_contribs`).",
    "linear": (
        "Coefficient times the standardised value (centred on the training mean), in log-odds."
    ),
}

INTENDED_USE = """\
- A prompt for human support: it tells an adviser or tutor which students may benefit from a
  conversation, and why (the factors behind each score), early enough for help to work: at
  enrollment, after the first semester, after the second.
- Used inside an institution whose students resemble the training data, by staff who know the
  students and the support on offer, with the scores read beside what they know."""

OUT_OF_SCOPE = """\
- Any automated decision about a student: admission, grading, scholarships, fees, sanctions,
  exclusion, or anything that takes something away from a student because of a score.
- Ranking or comparing students, courses, teachers or cohorts; any use outside the institution
  that produced the data without retraining and a new audit on its own students.
- Judging individuals by a group: the fairness figures describe groups, not students.
- Profiling for anything other than offering support (EU AI Act, Annex III point 3: AI used in
  education to evaluate or monitor students is high-risk)."""

HUMAN_OVERSIGHT = """\
- A person decides what happens after a flag, and a flag never triggers an action by itself.
  Students can be told that a model prompted the contact and why.
- A new version serves only after the champion gate: at least as good as the serving model on
  the same held-out students, and no worse across student groups than the serving model by more
  than the tolerance, nor beyond the caps. A person can override the gate (`--force`), and the
  override is recorded on the version (`gate.forced`, `fairness.gate.forced`).
- Live, each group's flag rate is compared with the rate the model showed on held-out data
  (alert `DropoutGroupFlagRateDeparted`), and the learning-loop monitor reports each group's
  realized TPR and FPR once outcomes arrive. What to do when they fire: docs/fairness.md."""

LIMITATIONS = """\
- One institution (Polytechnic Institute of Portalegre, Portugal), students enrolled 2008/09 to
  2018/19: another institution's students, courses and grading may behave differently; retrain
  on its own records (`DATA_PATH`) before trusting the scores there.
- "Enrolled" students count as not dropping out, although some of them will.
- Partial records are simulated by masking complete ones; real early records may be missing in
  other ways. Per-stage numbers are estimates for that simulation.
- Macro-economic attributes (GDP, inflation, unemployment) describe the enrollment year, not
  the student; they help the score only through cohort effects.
- Groups come from the attributes the data has (see the datasheet); unmeasured groups are not
  audited. Small groups (special educational needs: 51 students in the whole UCI file; other
  nationalities: about 110) are shown with wide intervals and not compared.
- Flag rates differ between groups partly because dropout rates differ (e.g. by age): equal
  flag rates are not the goal; equal error rates (TPR, FPR) are the closer reading.
- Held-out metrics come from one split (seed recorded); on this data set a different split moves
  ROC-AUC by about +-0.01."""


def render(facts: CardFacts) -> str:
    c = facts.contract
    t = c["training"]
    bands = ", ".join(f"{b['name']} [{b['lower']:.3f}, {b['upper']:.3f})" for b in c["risk_bands"])
    stage_lines = "\n".join(
        f"| {s} | {c['metrics']['per_stage'][s]['roc_auc']:.4f} | "
        f"{c['metrics']['per_stage'][s]['f1_dropout']:.4f} | "
        f"{c['metrics']['per_stage'][s]['brier']:.4f} |"
        for s in STAGES
    )
    labels = ", ".join(f"{k}: {v}" for k, v in facts.data["labels"].items())
    return f"""# Model card: {facts.model_name} version {facts.version}

Run `{facts.run_id}` ({facts.mode} search), git commit `{t["git_commit"]}`, created
{c["created_at"]}. Gate: **{facts.gate.get("decision", "?")}** ({facts.gate.get("reason", "?")}).

## What it does

Estimates the probability that a student drops out (Dropout vs Enrolled or Graduate) from the
UCI attributes known so far, flags students at or above the threshold, places them in a risk
band and names the {c["top_k_factors"]} factors that moved the score most.

## Data

- Source: {facts.data["origin"]} (sha256 `{facts.data["sha256"]}`), {facts.data["rows"]} students
  ({labels}).
- Held-out split: {t["test_size"]:.0%} stratified on dropout vs rest, seed {t["split_seed"]}:
  {t["n_train"]} training and {t["n_test"]} held-out students. The held-out part is used once,
  for this report and the gate.
- Training copies every student as seen complete, at a random stage and with a random share of
  optional attributes removed (inside the folds only), so the model scores partial records.
- Required attributes: {", ".join(REQUIRED)}; every other attribute may be missing.

## Model

- Kind: **{facts.model_kind}**. {facts.selection_policy}
- Features: feature-engine pipeline (approval rates per semester, grade trend, smoothed target
  encoding of nominal codes); Recursive Feature Addition kept {facts.kept_features} of
  {facts.offered_features} features.
- Threshold {c["threshold"]:.4f} (maximum F1 of out-of-fold predictions); bands: {bands}.
- Top factors: {CONTRIBUTION_TEXT.get(facts.contributions, facts.contributions)}
- Scoring cost: {facts.predict_ms_per_1000:.1f} ms per 1000 rows (probability, decision, band
  and top factors, one thread).

## Held-out quality

| stage | ROC-AUC | F1 dropout | Brier |
|---|---|---|---|
{stage_lines}

Seed's 7-attribute records: ROC-AUC {c["metrics"]["seed_subset"]["roc_auc"]:.4f}.

All candidates and the seed's 7-feature baseline:

{markdown_table(facts.rows)}

{NOTES}

## Intended use

{INTENDED_USE}

## Out-of-scope uses

{OUT_OF_SCOPE}

## Human oversight

{HUMAN_OVERSIGHT}
{_fairness(facts.fairness)}
## Limitations

{LIMITATIONS}

The training data is described in `datasheet.md` beside this card.
"""


def _fairness(facts: FairnessFacts | None) -> str:
    if facts is None:
        return ""
    inputs = (
        "uses the group attributes as inputs"
        if facts.sensitive_features == "with"
        else f"does not use these attributes as inputs: {', '.join(facts.excluded)}"
    )
    groups = "\n".join(f"- `{name}` (`{column}`): {text}" for name, column, text in facts.groups)
    caps = ", ".join(
        f"{DISPARITY_TITLES[k]} {'floor' if k == 'dp_ratio' else 'cap'} {facts.caps[k]:g}"
        for k in facts.kinds
    )
    gate = facts.gate.get("fairness.gate.reason")
    verdict = (
        f"Fairness gate: **{facts.gate.get('fairness.gate.decision', '?')}** ({gate})."
        if gate
        else "Fairness gate: not run."
    )
    return f"""
## Fairness across student groups

This version {inputs}. Audited groups:

{groups}

{verdict} Rule: refused when a gated disparity ({caps}) is worse than the serving model's by
more than {facts.tolerance:g}, or beyond its cap, unless a person forces it.

Every audited model (the candidates (a quick search audits only the chosen one), the chosen
kind without the sensitive attributes, and the seed's baseline):

{facts.comparison}

The chosen kind with and without the sensitive attributes, per stage and attribute:

{facts.pair}

{FAIRNESS_NOTES}

Per group, at each stage (plots: `fairness/<stage>.png`; tables: `fairness/groups.csv`,
`fairness/disparities.csv` in this run's artifacts):

{render_markdown_table(facts.audit)}
"""


def selection_policy_text(cv_winner: str, chosen: str, scores: dict[str, float]) -> str:
    if cv_winner == chosen:
        return f"It had the best cross-validated score ({scores[chosen]:.4f})."
    return (
        f"{cv_winner} had the best cross-validated score ({scores[cv_winner]:.4f}) but cannot "
        f"explain each score cheaply; by policy the best explainable candidate, {chosen} "
        f"({scores[chosen]:.4f}), is registered."
    )


def version_description(facts: CardFacts) -> str:
    """A few lines for the registered version's description (the MLflow UI shows it as
    Markdown; the full card is `model_card.md` in the run's artifacts)."""
    lines = [
        f"**{facts.model_kind}**, {facts.mode} search, run `{facts.run_id}`.",
        "",
        "Intended use: a prompt for human support (an adviser's conversation), never an "
        "automated decision about a student. See `model_card.md` and `datasheet.md` in the "
        "run's artifacts.",
        "",
        f"Gate: **{facts.gate.get('decision', '?')}** ({facts.gate.get('reason', '?')}).",
    ]
    if facts.fairness is not None:
        inputs = "with" if facts.fairness.sensitive_features == "with" else "without"
        lines += ["", f"Trained {inputs} the sensitive attributes as inputs."]
    return "\n".join(lines)[:4000]  # the registry keeps at most 5,000 characters
