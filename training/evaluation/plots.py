"""Figures of the chosen model and of the exploration report (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve


def pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend (chosen when plotting starts, not on import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    """One ROC curve per view (complete records, each stage, the seed subset)."""
    fig, ax = pyplot().subplots(figsize=(5.5, 4.5))
    for name, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (held-out)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float) -> Any:
    fig, ax = pyplot().subplots(figsize=(5.5, 4.5))
    for name, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.set(xlabel="recall (dropout)", ylabel="precision (dropout)")
    ax.set_title(f"Precision-recall (held-out), threshold {threshold:.3f}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig


def calibration_figure(y: np.ndarray, p: np.ndarray) -> Any:
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    fig, ax = pyplot().subplots(figsize=(5, 4.5))
    ax.plot(predicted, observed, marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect")
    ax.set(xlabel="predicted P(dropout)", ylabel="observed dropout rate")
    ax.set_title("Calibration (held-out, complete records)")
    ax.legend(loc="upper left")
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig


def confusion_figure(y: np.ndarray, p: np.ndarray, threshold: float) -> Any:
    matrix = confusion_matrix(y, p >= threshold, labels=[0, 1])
    fig, ax = pyplot().subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", fontsize=12)
    ax.set_xticks([0, 1], ["not at risk", "at risk"])
    ax.set_yticks([0, 1], ["stayed", "dropped out"])
    ax.set(xlabel="decision", ylabel="outcome")
    ax.set_title(f"Confusion matrix at {threshold:.3f}")
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig


def importance_figure(importance: dict[str, float], labels: dict[str, str], top: int = 20) -> Any:
    """Global importance: mean |contribution| (log-odds) over held-out students."""
    items = sorted(importance.items(), key=lambda kv: kv[1])[-top:]
    fig, ax = pyplot().subplots(figsize=(9, 0.3 * len(items) + 1.2))
    ax.barh([labels.get(k, k)[:60] for k, _ in items], [v for _, v in items])
    ax.set(xlabel="mean |contribution| (log-odds)", title="Global feature importance")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig


def selection_figure(
    drifts: dict[str, float], kept: list[str], labels: dict[str, str] | None = None
) -> Any:
    """Recursive Feature Addition: ROC-AUC gain of each feature, in the order it was tried."""
    names = list(drifts)
    gains = [drifts[n] for n in names]
    colours = ["tab:green" if n in kept else "tab:grey" for n in names]
    fig, ax = pyplot().subplots(figsize=(9, 0.25 * len(names) + 1.2))
    ax.barh(range(len(names)), gains, color=colours)
    shown = [(labels or {}).get(n, n)[:60] for n in names]
    ax.set_yticks(range(len(names)), shown, fontsize=6)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set(xlabel="CV ROC-AUC gain when added (green: kept)")
    ax.set_title("Recursive Feature Addition (by importance)")
    fig.tight_layout()  # long attribute names must fit inside the image
    return fig
