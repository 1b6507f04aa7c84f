"""The fairness audit of a trained model on the held-out split, and its record in MLflow.

`audit_model` labels the held-out students with the configured group definitions and audits the
model's scores of the same students as seen at each stage (enrollment, 1st semester, complete
records), at the model's own threshold: what a student is flagged with depends on how much is
known of them, and so can a gap between groups. `log_audit` writes the audit into the active
MLflow run: every figure as a metric (`fairness.<stage>.<attribute>...`), the tables as CSV and
Markdown, and one figure per stage (training/fairness is the library doing the work).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTE_NAMES, STAGES
from training.config import TrainingSettings, comma_list
from training.data.views import stage_view
from training.fairness import (
    FairnessAudit,
    GroupDefinition,
    assign_groups,
    audit_figures,
    audit_stages,
    definitions_to_json,
    render_markdown_table,
    select_groups,
)

Predictor = Callable[[pd.DataFrame], np.ndarray]
ARTIFACT_DIR = "fairness"
_METRICS_PER_CALL = 500  # MLflow's log_batch takes at most 1,000 metrics


@dataclass(frozen=True)
class FairnessConfig:
    """What the audit and the gate need of the settings (see training/config.py)."""

    definitions: tuple[GroupDefinition, ...]
    min_group_size: int
    n_bootstrap: int
    seed: int
    tolerance: float
    kinds: tuple[str, ...]
    caps: dict[str, float]
    sensitive_features: Literal["with", "without"]
    proxies: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: TrainingSettings) -> FairnessConfig:
        return cls(
            definitions=select_groups(comma_list(settings.fairness_groups)),
            min_group_size=settings.fairness_min_group_size,
            n_bootstrap=settings.fairness_bootstrap,
            seed=settings.search_seed,
            tolerance=settings.fairness_tolerance,
            kinds=tuple(comma_list(settings.fairness_gate_kinds)),
            caps={
                "dp_difference": settings.fairness_cap_dp_difference,
                "dp_ratio": settings.fairness_cap_dp_ratio,
                "eo_difference": settings.fairness_cap_eo_difference,
                "calibration_gap": settings.fairness_cap_calibration_gap,
            },
            sensitive_features=settings.sensitive_features,
            proxies=tuple(comma_list(settings.fairness_proxy_attributes)),
        )

    @property
    def sensitive_attributes(self) -> list[str]:
        """What the model `without` sensitive attributes does not see: the groups' columns and
        their proxies, in the data file's order."""
        wanted = {d.column for d in self.definitions} | set(self.proxies)
        return [name for name in ATTRIBUTE_NAMES if name in wanted]

    def document(self) -> dict[str, Any]:
        """The definitions as the contract carries them (common/groups.py reads them)."""
        document: dict[str, Any] = json.loads(definitions_to_json(self.definitions))
        return document


def audit_model(
    predict: Predictor,
    x: pd.DataFrame,
    y: pd.Series,
    threshold: float,
    config: FairnessConfig,
    *,
    n_bootstrap: int | None = None,
) -> FairnessAudit:
    """The audit of `predict` on these students at each stage (`n_bootstrap` None: the
    configured number; 0 when only the point figures matter, as in the gate)."""
    groups = assign_groups(x, config.definitions)
    probabilities: dict[str, np.ndarray] = {
        stage: np.asarray(predict(stage_view(x, stage)), dtype="float64") for stage in STAGES
    }
    return audit_stages(
        y.to_numpy(),
        probabilities,
        threshold,
        groups,
        n_bootstrap=config.n_bootstrap if n_bootstrap is None else n_bootstrap,
        seed=config.seed,
        min_group_size=config.min_group_size,
    )


def log_audit(fairness_audit: FairnessAudit, *, figures: bool = True) -> None:
    """Metrics, tables and (unless `figures` is False) one figure per stage, in the active
    MLflow run."""
    metrics = list(fairness_audit.to_metrics().items())
    for start in range(0, len(metrics), _METRICS_PER_CALL):
        mlflow.log_metrics(dict(metrics[start : start + _METRICS_PER_CALL]))
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        fairness_audit.to_frame().to_csv(folder / "groups.csv", index=False)
        fairness_audit.disparity_frame().to_csv(folder / "disparities.csv", index=False)
        (folder / "audit.md").write_text(render_markdown_table(fairness_audit), encoding="utf-8")
        if figures:
            for stage, figure in audit_figures(fairness_audit).items():
                figure.savefig(folder / f"{stage}.png", dpi=100)
        mlflow.log_artifacts(str(folder), artifact_path=ARTIFACT_DIR)


def audit_into_run(
    run_id: str,
    predict: Predictor,
    x: pd.DataFrame,
    y: pd.Series,
    threshold: float,
    config: FairnessConfig,
    *,
    figures: bool = True,
) -> FairnessAudit:
    """`audit_model` with the configured bootstrap, logged into the (finished) run `run_id`."""
    fairness_audit = audit_model(predict, x, y, threshold, config)
    with mlflow.start_run(run_id=run_id, nested=True):
        log_audit(fairness_audit, figures=figures)
    return fairness_audit
