"""The chosen model kind trained again without the sensitive attributes as inputs.

Same kind, same tuned parameters, same folds and feature selection; only the group attributes
(and their proxies) are dropped from the features. The variant gets its own out-of-fold
threshold, its own held-out report and its own MLflow run, so an institution sees both side by
side (quality and disparities) and chooses with SENSITIVE_FEATURES which one is registered.
Leaving an attribute out of the inputs does not make a model fair: other attributes can carry
the same information, which is why both are audited (docs/fairness.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import mlflow

from training.data.split import Split
from training.evaluation.metrics import flatten
from training.features.selection import FeatureSelection
from training.log import get_logger
from training.search.candidates import Candidate, fit_and_evaluate
from training.search.cv import CandidateResult, FoldPlan, SearchConfig, cross_validate

log = get_logger(__name__)

VARIANT_NAME = "without sensitive attributes"


def without_sensitive(
    found: CandidateResult,
    split: Split,
    plan: FoldPlan,
    config: SearchConfig,
    selection: FeatureSelection,
    sensitive: Sequence[str],
    tags: dict[str, str],
) -> Candidate:
    """`found`'s kind and parameters, cross-validated and refitted without `sensitive`."""
    started = time.perf_counter()
    drop = sorted(set(selection.dropped) | set(sensitive))
    cv, oof = cross_validate(found.kind, found.params, replace(plan, drop=drop), config)
    result = CandidateResult(found.kind, dict(found.params), cv, oof, time.perf_counter() - started)
    pipeline, threshold, report = fit_and_evaluate(result, split, config, drop)
    with mlflow.start_run(run_name=f"{found.kind}-without-sensitive", nested=True) as run:
        mlflow.set_tags(
            {
                **tags,
                "role": "candidate_variant",
                "model_kind": found.kind,
                "sensitive_features": "without",
            }
        )
        mlflow.log_params(
            {
                **found.params,
                "features_dropped": len(drop),
                "sensitive_attributes": ", ".join(sensitive),
            }
        )
        mlflow.log_metrics({**cv, **flatten(report), "search_seconds": result.seconds})
    log.info(
        "trained_without_sensitive",
        kind=found.kind,
        dropped=list(sensitive),
        cv_score=round(cv["cv_score"], 4),
    )
    return Candidate(result, pipeline, threshold, report, run.info.run_id)
