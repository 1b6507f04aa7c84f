"""The held-out metrics table, on the terminal (rich) and in Markdown (model card, benchmark)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class ModelRow:
    name: str
    report: dict[str, Any]  # evaluation.evaluate() output
    cv_score: float | None = None
    note: str = ""


_COLUMNS = (
    "model",
    "CV score",
    "ROC-AUC",
    "F1 dropout",
    "Brier",
    "AUC enrollment",
    "AUC 1st sem",
    "AUC seed-7",
    "threshold",
    "",
)


def _cells(row: ModelRow) -> list[str]:
    r = row.report
    return [
        row.name,
        "-" if row.cv_score is None else f"{row.cv_score:.4f}",
        f"{r['roc_auc']:.4f}",
        f"{r['f1_dropout']:.4f}",
        f"{r['brier']:.4f}",
        f"{r['per_stage']['enrollment']['roc_auc']:.4f}",
        f"{r['per_stage']['first_semester']['roc_auc']:.4f}",
        f"{r['seed_subset']['roc_auc']:.4f}",
        f"{r['threshold']:.3f}",
        row.note,
    ]


def rich_table(rows: list[ModelRow], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(_COLUMNS):
        table.add_column(name, justify="left" if i in (0, len(_COLUMNS) - 1) else "right")
    for row in rows:
        table.add_row(*_cells(row))
    return table


def markdown_table(rows: list[ModelRow]) -> str:
    lines = [
        "| " + " | ".join(c or "note" for c in _COLUMNS) + " |",
        "|" + "|".join("---" for _ in _COLUMNS) + "|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join(lines)


NOTES = (
    "ROC-AUC, F1 and Brier: complete records (dropout vs rest) of the held-out split. "
    "AUC enrollment / 1st sem: the same students with only what is known at that stage. "
    "AUC seed-7: only the seed's 7 attributes known. CV score: mean ROC-AUC over the three "
    "stages in cross-validation on the training part. F1 at each model's own threshold, "
    "chosen on out-of-fold predictions."
)
