"""`explore`: a self-contained HTML report of the data (images inline), from the same code that
trains: class balance, distributions by outcome, correlations, the feature-selection curve."""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from common.attributes import ATTRIBUTES, TARGET_LABELS
from training.config import TrainingSettings
from training.data.reading import Dataset, load_dataset
from training.data.split import held_out_split
from training.evaluation import plots
from training.features.pipeline import feature_label
from training.log import get_logger
from training.search.cv import SearchConfig

log = get_logger(__name__)

NUMERIC_SHOWN = (
    "Admission grade",
    "Age at enrollment",
    "Previous qualification (grade)",
    "Curricular units 1st sem (approved)",
    "Curricular units 1st sem (grade)",
    "Curricular units 2nd sem (approved)",
    "Curricular units 2nd sem (grade)",
    "Unemployment rate",
    "GDP",
)
COLOURS = {"Dropout": "tab:red", "Enrolled": "tab:orange", "Graduate": "tab:green"}


def write_report(settings: TrainingSettings) -> Path:
    dataset = load_dataset(settings)
    sections = [
        ("Class balance", _img(_balance(dataset)), _balance_table(dataset)),
        ("Distributions by outcome", _img(_distributions(dataset)), ""),
        ("Dropout rate by flag", _img(_flags(dataset)), ""),
        ("Correlations", _img(_correlations(dataset)), _target_correlations(dataset)),
        ("Feature selection (Recursive Feature Addition)", *_selection(dataset, settings)),
    ]
    body = "\n".join(
        f"<section><h2>{html.escape(title)}</h2>{figure}{extra}</section>"
        for title, figure, extra in sections
    )
    source = dataset.source
    page = _PAGE.format(
        when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        origin=html.escape(source.origin),
        sha=source.sha256,
        rows=len(dataset.features),
        body=body,
    )
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    path = settings.reports_dir / "explore.html"
    path.write_text(page, encoding="utf-8")
    log.info("explore_report_written", path=str(path))
    return path


def _img(fig: Any) -> str:
    data = base64.b64encode(plots.png_bytes(fig)).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _balance(dataset: Dataset) -> Any:
    counts = dataset.labels.value_counts().reindex(TARGET_LABELS)
    fig, ax = plots.pyplot().subplots(figsize=(5, 3.2))
    ax.bar(counts.index, counts.values, color=[COLOURS[k] for k in counts.index])
    ax.set(ylabel="students", title="Outcome of each student")
    return fig


def _balance_table(dataset: Dataset) -> str:
    counts = dataset.labels.value_counts().reindex(TARGET_LABELS)
    share = counts / counts.sum()
    rows = "".join(
        f"<tr><td>{k}</td><td>{counts[k]}</td><td>{share[k]:.1%}</td></tr>" for k in counts.index
    )
    return (
        "<table><tr><th>outcome</th><th>students</th><th>share</th></tr>"
        f"{rows}</table><p>The model predicts Dropout against the other two "
        f"({share['Dropout']:.1%} positives).</p>"
    )


def _distributions(dataset: Dataset) -> Any:
    fig, axes = plots.pyplot().subplots(3, 3, figsize=(11, 8))
    for ax, name in zip(axes.ravel(), NUMERIC_SHOWN, strict=True):
        values = dataset.features[name]
        bins = np.histogram_bin_edges(values, bins=20)
        for label in TARGET_LABELS:
            ax.hist(
                values[dataset.labels == label],
                bins=bins,
                density=True,
                alpha=0.45,
                label=label,
                color=COLOURS[label],
            )
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    return fig


def _flags(dataset: Dataset) -> Any:
    flags = [a.name for a in ATTRIBUTES if a.kind == "categorical" and a.max == 1]
    rates = {
        name: dataset.target.groupby(dataset.features[name]).mean().reindex([0.0, 1.0])
        for name in flags
    }
    fig, ax = plots.pyplot().subplots(figsize=(8, 3.8))
    x = np.arange(len(flags))
    ax.bar(x - 0.2, [rates[f][0.0] for f in flags], width=0.4, label="0 / no")
    ax.bar(x + 0.2, [rates[f][1.0] for f in flags], width=0.4, label="1 / yes")
    ax.set_xticks(x, flags, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="dropout rate")
    ax.legend(fontsize=7)
    return fig


def _correlations(dataset: Dataset) -> Any:
    frame = dataset.features.assign(dropout=dataset.target)
    corr = frame.corr(method="spearman").fillna(0.0)
    fig, ax = plots.pyplot().subplots(figsize=(10, 9))
    image = ax.imshow(corr.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), [c[:28] for c in corr.columns], rotation=90, fontsize=6)
    ax.set_yticks(range(len(corr)), [c[:28] for c in corr.columns], fontsize=6)
    fig.colorbar(image, ax=ax, shrink=0.7, label="Spearman correlation")
    return fig


def _target_correlations(dataset: Dataset) -> str:
    frame = dataset.features.assign(dropout=dataset.target)
    corr = frame.corr(method="spearman")["dropout"].drop("dropout").dropna()
    top = corr.reindex(corr.abs().sort_values(ascending=False).index)[:12]
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{v:+.3f}</td></tr>" for k, v in top.items()
    )
    return f"<table><tr><th>attribute</th><th>correlation with dropout</th></tr>{rows}</table>"


def _selection(dataset: Dataset, settings: TrainingSettings) -> tuple[str, str]:
    """The same selection step the training job runs (quick settings), on the training part."""
    split = held_out_split(dataset, settings.split_seed, settings.test_size)
    config = SearchConfig.from_settings(settings, quick=True)
    selection = config.select_features(split.x_train, split.y_train)
    gains = pd.Series(selection.drifts)
    curve = gains.cumsum() + 0.0
    text = (
        f"<p>Features ranked by XGBoost importance, added one at a time; kept when they raise "
        f"grouped-CV ROC-AUC on partial and complete training records. Kept "
        f"{len(selection.kept)} of {len(selection.offered)} (all features: ROC-AUC "
        f"{selection.initial_roc_auc:.4f}; summed gains {curve.iloc[-1]:+.4f}).</p>"
        "<p>Kept: " + ", ".join(html.escape(feature_label(f)) for f in selection.kept) + "</p>"
    )
    labels = {n: feature_label(n) for n in selection.offered}
    return _img(plots.selection_figure(selection.drifts, selection.kept, labels)), text


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Student dropout: data exploration</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
section {{ margin-bottom: 2.5em; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
</style></head><body>
<h1>Student dropout: data exploration</h1>
<p>Generated {when} by <code>python -m training explore</code> from {origin}
(sha256 <code>{sha}</code>), {rows} students.</p>
{body}
</body></html>
"""
