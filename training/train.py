"""The `train` job: data -> feature selection -> model search -> held-out report -> register ->
gate. Every candidate is an MLflow run nested under one parent run."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
from mlflow.data.pandas_dataset import from_pandas

from training.config import TrainingSettings
from training.data.reading import Dataset, load_dataset
from training.data.split import SPLIT_METHOD, held_out_split
from training.evaluation.model_card import CardFacts, render, selection_policy_text
from training.evaluation.report import ModelRow
from training.features.pipeline import EXPLAINABLE, ModelKind
from training.log import get_logger, progress
from training.registry.gate import GateDecision, run_gate
from training.registry.register import register_chosen, tag_version
from training.registry.tracking import configure_tracking, git_commit
from training.search.candidates import Candidate, baseline, finish_candidate, select_and_log
from training.search.cv import (
    CandidateResult,
    SearchConfig,
    plan_folds,
    search_grid,
    search_xgboost,
)

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
        baseline_row = baseline(split, plan, config, tags)
        bar.advance(task)
        watch.lap("held_out")

        # Selection by CV only; the served model must explain each score (see EXPLAINABLE).
        scores: dict[str, float] = {kind: r.cv["cv_score"] for kind, r in results.items()}
        cv_winner = max(scores, key=lambda k: scores[k])
        chosen_kind = max((k for k in results if k in EXPLAINABLE), key=lambda k: scores[k])
        chosen = candidates[chosen_kind]
        log.info("model_chosen", kind=chosen_kind, cv_winner=cv_winner, cv_scores=scores)

        task = bar.add_task("package + register", total=1)
        registered = register_chosen(
            settings, dataset, split, chosen, git_commit=tags["git_commit"], cv_winner=cv_winner
        )
        version = registered.version
        bar.advance(task)
        watch.lap("package_register")

        task = bar.add_task("champion gate", total=1)
        decision = run_gate(
            client,
            name=settings.model_name,
            alias=settings.model_alias,
            version=version,
            split=split,
            tolerance=settings.gate_tolerance,
            force=force,
        )
        tag_version(client, settings.model_name, version, chosen, cv_winner, scores, tags)
        bar.advance(task)
        watch.lap("gate")

        rows = [
            ModelRow(
                f"{kind} (registered v{version})" if kind == chosen_kind else kind,
                c.report,
                c.result.cv["cv_score"],
                "" if kind in EXPLAINABLE else "no per-row factors: not served",
            )
            for kind, c in candidates.items()
        ]
        rows.append(baseline_row)
        card = render(
            CardFacts(
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
            )
        )
        client.log_text(chosen.run_id, card, "model_card.md")
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
        )
    _write_reports(settings.reports_dir, card, result)
    log.info(
        "training_finished",
        version=version,
        kind=chosen_kind,
        promoted=decision.promote,
        reason=decision.reason,
        seconds=result.seconds,
    )
    return result


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


def _write_reports(folder: Path, card: str, result: TrainingResult) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model-card.md").write_text(card, encoding="utf-8")
    summary = {
        "version": result.version,
        "run_id": result.run_id,
        "model_kind": result.model_kind,
        "cv_winner": result.cv_winner,
        "gate": {"promoted": result.decision.promote, "reason": result.decision.reason},
        "predict_ms_per_1000": result.predict_ms_per_1000,
        "seconds": result.seconds,
        "stage_seconds": result.stage_seconds,
        "held_out": {row.name: row.report for row in result.rows},
    }
    (folder / "training-summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
