"""The `train` job: data -> feature selection -> model search -> held-out report -> fairness
audit -> register -> gate. Every candidate is an MLflow run nested under one parent run.

Every candidate, the seed's baseline and the chosen kind trained again without the sensitive
attributes are audited across student groups on the held-out split (docs/fairness.md); the
SENSITIVE_FEATURES setting picks which of the chosen kind's two trainings is registered, and
the gate judges it on quality and fairness."""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas

from training.config import TrainingSettings
from training.data.reading import Dataset, load_dataset
from training.data.split import SPLIT_METHOD, Split, held_out_split
from training.evaluation.datasheet import render_datasheet
from training.evaluation.fairness import FairnessConfig, audit_into_run
from training.evaluation.fairness_report import (
    comparison_markdown,
    disparity_pair_markdown,
    worst_summary,
)
from training.evaluation.model_card import (
    CardFacts,
    FairnessFacts,
    render,
    selection_policy_text,
    version_description,
)
from training.evaluation.report import ModelRow
from training.fairness import FairnessAudit
from training.features.pipeline import EXPLAINABLE, ModelKind
from training.log import get_logger, progress
from training.registry.contract import fairness_section
from training.registry.gate import GateDecision, run_gate
from training.registry.register import register_chosen, tag_version
from training.registry.tracking import configure_tracking, git_commit
from training.search.candidates import (
    BaselineModel,
    Candidate,
    baseline,
    finish_candidate,
    select_and_log,
)
from training.search.cv import (
    CandidateResult,
    SearchConfig,
    plan_folds,
    search_grid,
    search_xgboost,
)
from training.search.unaware import VARIANT_NAME, without_sensitive

log = get_logger(__name__)


@dataclass
class TrainingResult:
    version: str
    run_id: str
    parent_run_id: str
    model_kind: str
    cv_winner: str
    decision: GateDecision
    rows: list[ModelRow]
    contract: dict[str, Any]
    predict_ms_per_1000: float
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # digest, rows and sources trained on
    # Per row name: the held-out fairness audit of that model.
    audits: dict[str, FairnessAudit] = field(default_factory=dict)
    # The row names of the chosen kind trained with and without the sensitive attributes.
    sensitive_pair: tuple[str, str] = ("", "")


class _Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.laps: dict[str, float] = {}
        self._last = self.start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def run_training(settings: TrainingSettings, *, quick: bool, force: bool = False) -> TrainingResult:
    watch = _Stopwatch()
    fairness = FairnessConfig.from_settings(settings)
    mode = "quick" if quick else "full"
    dataset = load_dataset(settings)  # first: a bad file fails before anything is tracked
    client = configure_tracking(settings)
    split = held_out_split(dataset, settings.split_seed, settings.test_size)
    config = SearchConfig.from_settings(settings, quick=quick)
    tags = {
        "git_commit": git_commit(),
        "data_sha256": dataset.source.sha256,
        "data_origin": dataset.source.origin,
        "split_seed": str(settings.split_seed),
        "test_size": str(settings.test_size),
        "split_method": SPLIT_METHOD,
        "search_mode": mode,
    }
    log.info("training_started", mode=mode, rows=len(dataset.features), **tags)
    watch.lap("data")

    with progress() as bar, mlflow.start_run(run_name=f"train-{mode}") as parent:
        mlflow.set_tags({**tags, "role": "parent"})
        mlflow.log_params(_config_params(config, settings))
        _log_dataset(dataset)

        task = bar.add_task("feature selection (RFA)", total=1)
        selection = select_and_log(split, config, tags)
        bar.advance(task)
        watch.lap("feature_selection")

        plan = plan_folds(split.x_train, split.y_train, config)
        plan.drop = selection.dropped
        n_grid = len(config.lr_grid) + len(config.rf_grid) + len(config.svm_grid)
        task = bar.add_task("model search (CV)", total=n_grid + config.xgb_trials)

        def step() -> None:
            bar.advance(task)

        results: dict[ModelKind, CandidateResult] = {
            "logistic_regression": search_grid(
                "logistic_regression", config.lr_grid, plan, config, advance=step
            ),
            "random_forest": search_grid(
                "random_forest", config.rf_grid, plan, config, advance=step
            ),
            "svm": search_grid("svm", config.svm_grid, plan, config, advance=step),
            "xgboost": search_xgboost(plan, config, advance=step),
        }
        watch.lap("search")

        task = bar.add_task("held-out evaluation", total=len(results) + 1)
        candidates: dict[ModelKind, Candidate] = {}
        for kind, found in results.items():
            candidates[kind] = finish_candidate(found, split, config, selection, tags)
            bar.advance(task)
        base = baseline(split, plan, config, tags)
        bar.advance(task)
        watch.lap("held_out")

        # Selection by CV only; the served model must explain each score (see EXPLAINABLE).
        scores: dict[str, float] = {kind: r.cv["cv_score"] for kind, r in results.items()}
        cv_winner = max(scores, key=lambda k: scores[k])
        chosen_kind = max((k for k in results if k in EXPLAINABLE), key=lambda k: scores[k])
        log.info("model_chosen", kind=chosen_kind, cv_winner=cv_winner, cv_scores=scores)

        task = bar.add_task("fairness audit", total=(1 if quick else len(candidates)) + 2)
        unaware = without_sensitive(
            results[chosen_kind],
            split,
            plan,
            config,
            selection,
            fairness.sensitive_attributes,
            tags,
        )
        registered_key = "unaware" if fairness.sensitive_features == "without" else chosen_kind
        # A quick search audits what it reports on and registers: the chosen kind with and
        # without the sensitive attributes, and the baseline; a full search every candidate.
        audits = _audit_all(
            {chosen_kind: candidates[chosen_kind]} if quick else candidates,
            unaware,
            base,
            split,
            fairness,
            plotted={registered_key} if quick else None,
            advance=lambda: bar.advance(task),
        )
        chosen = unaware if registered_key == "unaware" else candidates[chosen_kind]
        chosen_audit = audits[registered_key]
        watch.lap("fairness")

        task = bar.add_task("package + register", total=1)
        registered = register_chosen(
            settings,
            dataset,
            split,
            chosen,
            git_commit=tags["git_commit"],
            cv_winner=cv_winner,
            fairness=fairness_section(
                definitions=fairness.document(),
                fairness_audit=chosen_audit,
                threshold=chosen.threshold,
                min_group_size=fairness.min_group_size,
                sensitive_features=fairness.sensitive_features,
                excluded_features=excluded(fairness),
            ),
        )
        version = registered.version
        bar.advance(task)
        watch.lap("package_register")

        task = bar.add_task("champion gate", total=1)
        decision = run_gate(
            client,
            settings,
            version=version,
            split=split,
            force=force,
            fairness=fairness,
            challenger_audit=chosen_audit,
        )
        tag_version(client, settings.model_name, version, chosen, cv_winner, scores, tags)
        client.set_model_version_tag(
            settings.model_name, version, "sensitive_features", fairness.sensitive_features
        )
        bar.advance(task)
        watch.lap("gate")

        named = _row_names(candidates, chosen_kind, registered_key, version)
        rows = [
            ModelRow(
                named[kind],
                c.report,
                c.result.cv["cv_score"],
                "" if kind in EXPLAINABLE else "no per-row factors: not served",
            )
            for kind, c in candidates.items()
        ]
        rows.append(ModelRow(named["unaware"], unaware.report, unaware.result.cv["cv_score"], ""))
        rows.append(base.row)
        row_audits = {named.get(key, key): audit for key, audit in audits.items()}
        row_audits[base.row.name] = row_audits.pop("baseline")
        pair = (named[chosen_kind], named["unaware"])
        card_facts = CardFacts(
            model_name=settings.model_name,
            version=version,
            run_id=chosen.run_id,
            model_kind=chosen_kind,
            contributions=EXPLAINABLE[chosen_kind],
            selection_policy=selection_policy_text(cv_winner, chosen_kind, scores),
            data=_data_facts(dataset),
            contract=registered.contract,
            rows=rows,
            kept_features=len(selection.kept),
            offered_features=len(selection.offered),
            predict_ms_per_1000=registered.predict_ms_per_1000,
            gate={
                "decision": "promoted" if decision.promote else "refused",
                "reason": decision.reason,
            },
            mode=mode,
            fairness=FairnessFacts(
                audit=chosen_audit,
                groups=[(d.name, d.column, d.description) for d in fairness.definitions],
                sensitive_features=fairness.sensitive_features,
                excluded=excluded(fairness),
                comparison=comparison_markdown(rows, row_audits),
                pair=disparity_pair_markdown(audits[chosen_kind], audits["unaware"]),
                gate=decision.fairness.figures if decision.fairness else {},
                min_group_size=fairness.min_group_size,
                tolerance=fairness.tolerance,
                caps=fairness.caps,
                kinds=fairness.kinds,
            ),
        )
        card = render(card_facts)
        datasheet = render_datasheet(dataset, split, fairness.definitions)
        client.log_text(chosen.run_id, datasheet, "datasheet.md")
        client.log_text(chosen.run_id, card, "model_card.md")
        # The version's page in the MLflow UI renders its description as Markdown.
        client.update_model_version(
            settings.model_name, version, description=version_description(card_facts)
        )
        mlflow.log_metric("wall_seconds", watch.total)
        result = TrainingResult(
            version=version,
            run_id=chosen.run_id,
            parent_run_id=parent.info.run_id,
            model_kind=chosen_kind,
            cv_winner=cv_winner,
            decision=decision,
            rows=rows,
            contract=registered.contract,
            predict_ms_per_1000=registered.predict_ms_per_1000,
            seconds=watch.total,
            stage_seconds=watch.laps,
            data=_data_facts(dataset),
            audits=row_audits,
            sensitive_pair=pair,
        )
    _write_reports(settings.reports_dir, card, datasheet, result)
    log.info(
        "training_finished",
        version=version,
        kind=chosen_kind,
        sensitive_features=fairness.sensitive_features,
        promoted=decision.promote,
        reason=decision.reason,
        fairness=worst_summary(chosen_audit),
        seconds=result.seconds,
    )
    return result


def excluded(fairness: FairnessConfig) -> list[str]:
    """The attributes the registered model does not use as inputs (fairness-wise)."""
    return fairness.sensitive_attributes if fairness.sensitive_features == "without" else []


def _audit_all(
    candidates: dict[ModelKind, Candidate],
    unaware: Candidate,
    base: BaselineModel,
    split: Split,
    fairness: FairnessConfig,
    *,
    plotted: set[str] | None,
    advance: Callable[[], None],
) -> dict[str, FairnessAudit]:
    """The audit of each of `candidates`, `unaware` and the baseline, logged into its own
    run; keyed by kind, `unaware` and `baseline`.

    `plotted`: the keys whose figures are drawn (None: all). Drawing costs about a second per
    model, so a quick search draws only the registered model's (the card points to them)."""
    audits: dict[str, FairnessAudit] = {}
    for key, c in [*candidates.items(), ("unaware", unaware)]:
        audits[key] = audit_into_run(
            c.run_id,
            _probabilities(c),
            split.x_test,
            split.y_test,
            c.threshold,
            fairness,
            figures=plotted is None or key in plotted,
        )
        advance()
    audits["baseline"] = audit_into_run(
        base.run_id,
        base.predict,
        split.x_test,
        split.y_test,
        base.threshold,
        fairness,
        figures=plotted is None,
    )
    advance()
    return audits


def _probabilities(candidate: Candidate) -> Callable[[pd.DataFrame], np.ndarray]:
    pipeline = candidate.pipeline
    return lambda frame: np.asarray(pipeline.predict_proba(frame)[:, 1], dtype="float64")


def _row_names(
    candidates: dict[ModelKind, Candidate], chosen_kind: str, registered: str, version: str
) -> dict[str, str]:
    """The report row of each model: the registered one says so."""
    names: dict[str, str] = {str(kind): str(kind) for kind in candidates}
    names["unaware"] = f"{chosen_kind} {VARIANT_NAME}"
    names[registered] = f"{names[registered]} (registered v{version})"
    return names


def _config_params(config: SearchConfig, settings: TrainingSettings) -> dict[str, Any]:
    return {
        "search_mode": "quick" if config.quick else "full",
        "cv_folds": config.folds,
        "xgb_trials": config.xgb_trials,
        "augment_copies": config.augment_copies,
        "augment_max_missing": config.augment_max_missing,
        "augment_pattern_share": config.augment_pattern_share,
        "split_seed": settings.split_seed,
        "test_size": settings.test_size,
        "search_seed": config.seed,
        "gate_tolerance": settings.gate_tolerance,
        "fairness_groups": settings.fairness_groups,
        "fairness_tolerance": settings.fairness_tolerance,
        "fairness_gate_kinds": settings.fairness_gate_kinds,
        "sensitive_features": settings.sensitive_features,
    }


def _log_dataset(dataset: Dataset) -> None:
    """One MLflow dataset input per source, named after it, with its own digest."""
    from training.data.reading import source_name

    frame = dataset.features.assign(Target=dataset.labels)
    for source in dataset.sources:
        name = source_name(source)
        rows = frame[(dataset.origin == name).to_numpy()].reset_index(drop=True)
        local = source.origin in ("local", "offline copy")
        where = str(source.path.resolve()) if local else source.origin
        with warnings.catch_warnings():
            # MLflow 3.17 registers its local-file source twice and warns that it is ambiguous.
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways.*")
            data = from_pandas(
                rows, source=where, name=name, targets="Target", digest=source.sha256[:16]
            )
        mlflow.log_input(data, context="training")


def _data_facts(dataset: Dataset) -> dict[str, Any]:
    from training.data.reading import source_name

    return {
        "origin": dataset.source.origin,
        "sha256": dataset.source.sha256,
        "rows": len(dataset.features),
        "labels": {str(k): int(v) for k, v in dataset.labels.value_counts().items()},
        "sources": [
            {
                "name": source_name(source),
                "origin": source.origin,
                "sha256": source.sha256,
                "rows": int((dataset.origin == source_name(source)).sum()),
            }
            for source in dataset.sources
        ],
    }


def _write_reports(folder: Path, card: str, datasheet: str, result: TrainingResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-card.md").write_text(card, encoding="utf-8")
    (folder / "datasheet.md").write_text(datasheet, encoding="utf-8")
    summary = {
        "version": result.version,
        "run_id": result.run_id,
        "model_kind": result.model_kind,
        "cv_winner": result.cv_winner,
        "gate": {
            "promoted": result.decision.promote,
            "reason": result.decision.reason,
            "fairness": result.decision.fairness.figures if result.decision.fairness else None,
        },
        "predict_ms_per_1000": result.predict_ms_per_1000,
        "seconds": result.seconds,
        "stage_seconds": result.stage_seconds,
        "held_out": {row.name: row.report for row in result.rows},
        "fairness": {
            name: {
                kind: {
                    "value": w.value if math.isfinite(w.value) else None,
                    "attribute": w.attribute,
                    "stage": w.stage,
                }
                for kind, w in audit.worst.items()
            }
            for name, audit in result.audits.items()
        },
        "sensitive_pair": list(result.sensitive_pair),
    }
    (folder / "training-summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
