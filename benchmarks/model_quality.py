"""Model quality benchmark (`make benchmark-model`): the full search, then the held-out table.

Runs `python -m training train` (full search) against a throw-away sqlite registry, prints every
candidate and the seed's 7-feature baseline on the held-out split (complete records, each stage,
the seed's 7-attribute records), the wall time per step, and checks the bars of the issue:
ROC-AUC >= 0.93, F1(dropout) >= 0.80, Brier <= 0.10 (dropout vs rest), full search <= 5 min.
Exit status 1 when a bar is missed.

Beside the quality table it prints the fairness audit of the same held-out split
(docs/fairness.md): every model's worst disparities next to its quality, and the chosen kind
trained with and without the sensitive attributes, per stage and attribute.

Data: DATA_PATH if set, else `shared/data/students_dropout_academic_success.csv` beside the
repository (or above it), else the checked UCI download.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

BARS = {"roc_auc": (">=", 0.93), "f1_dropout": (">=", 0.80), "brier": ("<=", 0.10)}
MAX_SECONDS = 300.0


def find_data() -> Path | None:
    """DATA_PATH or an offline copy (common/data_files.py); None lets training download."""
    from common.data_files import DataFileError, find_data_file

    try:
        return find_data_file(None, offline_copies=True).path
    except DataFileError:
        return None


def main() -> int:
    from rich.console import Console

    from training.config import TrainingSettings
    from training.evaluation.fairness_report import NOTES as FAIRNESS_NOTES
    from training.evaluation.fairness_report import (
        comparison_markdown,
        comparison_rich,
        disparity_pair_markdown,
        disparity_pair_rich,
    )
    from training.evaluation.report import NOTES, markdown_table, rich_table
    from training.log import configure_logging
    from training.train import run_training

    console = Console(width=None if sys.stdout.isatty() else 170)
    base = TrainingSettings()
    configure_logging("WARNING", base.log_format)
    with tempfile.TemporaryDirectory(prefix="benchmark-model-") as tmp:
        settings = base.model_copy(
            update={
                "mlflow_tracking_uri": f"sqlite:///{Path(tmp) / 'mlflow.db'}",
                "mlflow_experiment_name": "benchmark-model-quality",
                "mlflow_artifact_location": None,
                "data_path": find_data() or base.data_path,
            }
        )
        start = time.perf_counter()
        result = run_training(settings, quick=False)
        wall = time.perf_counter() - start

    served = next(row for row in result.rows if "registered" in row.name)
    console.print(rich_table(result.rows, "Held-out quality, full search"), f"[dim]{NOTES}[/]")
    console.print(
        f"registered: {result.model_kind} (CV winner: {result.cv_winner}); "
        f"predict {result.predict_ms_per_1000:.1f} ms per 1000 rows with top factors"
    )
    with_, without = (result.audits[name] for name in result.sensitive_pair)
    console.print(
        comparison_rich(result.rows, result.audits, "Held-out quality and worst disparities"),
        disparity_pair_rich(
            with_,
            without,
            "Disparities of the registered kind: with / without the sensitive attributes",
        ),
        f"[dim]{FAIRNESS_NOTES}[/]",
    )
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
    console.print(f"wall time {wall:.1f} s ({steps})")

    failed = []
    for metric, (op, bar) in BARS.items():
        value = served.report[metric]
        ok = value >= bar if op == ">=" else value <= bar
        failed += [] if ok else [metric]
        console.print(f"{'PASS' if ok else 'FAIL'} {metric} = {value:.4f} (bar {op} {bar})")
    ok = wall <= MAX_SECONDS
    failed += [] if ok else ["wall time"]
    console.print(f"{'PASS' if ok else 'FAIL'} wall time = {wall:.0f} s (bar <= {MAX_SECONDS:.0f})")

    report = settings.reports_dir / "model-quality.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        f"# Model quality (full search)\n\n{markdown_table(result.rows)}\n\n{NOTES}\n\n"
        f"Wall time {wall:.1f} s ({steps}). Predict {result.predict_ms_per_1000:.1f} ms per "
        "1000 rows.\n\n## Fairness (held-out split)\n\n"
        f"{comparison_markdown(result.rows, result.audits)}\n\n"
        f"{disparity_pair_markdown(with_, without)}\n\n{FAIRNESS_NOTES}\n",
        encoding="utf-8",
    )
    console.print(f"report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
