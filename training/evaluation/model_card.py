"""The model card: a short Markdown page logged with every chosen model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.attributes import REQUIRED, STAGES
from training.evaluation.report import NOTES, ModelRow, markdown_table


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

LIMITATIONS = """\
- One institution (Polytechnic Institute of Portalegre, Portugal), students enrolled 2008/09 to
  2018/19: another institution's students, courses and grading may behave differently; retrain
  on its own records (`DATA_PATH`) before trusting the scores there.
- "Enrolled" students count as not dropping out, although some of them will.
- Partial records are simulated by masking complete ones; real early records may be missing in
  other ways. Per-stage numbers are estimates for that simulation.
- Macro-economic attributes (GDP, inflation, unemployment) describe the enrollment year, not
  the student; they help the score only through cohort effects.
- Fairness across gender, age, nationality or special needs has not been assessed. The score is
  a prompt for an adviser's conversation, never a decision about a student.
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

## Limitations

{LIMITATIONS}
"""


def selection_policy_text(cv_winner: str, chosen: str, scores: dict[str, float]) -> str:
    if cv_winner == chosen:
        return f"It had the best cross-validated score ({scores[chosen]:.4f})."
    return (
        f"{cv_winner} had the best cross-validated score ({scores[cv_winner]:.4f}) but cannot "
        f"explain each score cheaply; by policy the best explainable candidate, {chosen} "
        f"({scores[chosen]:.4f}), is registered."
    )
