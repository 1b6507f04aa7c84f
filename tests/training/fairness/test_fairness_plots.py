"""The reviewer's view: one figure per stage, and the model card's markdown tables."""

from __future__ import annotations

import io

import pytest

from tests.training.fairness.synthetic import cohorts, scored
from training.fairness import (
    FairnessAudit,
    StageAudit,
    audit,
    audit_figures,
    audit_stages,
    render_markdown_table,
    stage_figure,
)


@pytest.fixture(scope="module")
def audited() -> FairnessAudit:
    data = scored(n=1500, seed=3, shift=1.5)
    probs = {"enrollment": data.prob, "second_semester": data.prob}
    return audit_stages(data.y, probs, 0.5, data.groups, n_bootstrap=30)


@pytest.fixture(scope="module")
def odd() -> StageAudit:
    """A small group and a group without dropouts."""
    data = cohorts({"a": (300, 0.3, 0.0), "tiny": (12, 0.3, 0.0), "graduates": (50, 0.0, 0.0)})
    return audit(data.y, data.prob, 0.5, data.groups, stage="first_semester", n_bootstrap=30)


def test_one_figure_per_stage_with_a_panel_per_attribute(audited: FairnessAudit) -> None:
    figures = audit_figures(audited)
    assert list(figures) == ["enrollment", "second_semester"]
    figure = figures["enrollment"]
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["gender", "region"]
    # Per group: a flag rate and a TPR, each with its interval.
    region = visible[1]
    assert [t.get_text().split("\n")[0] for t in region.get_xticklabels()] == [
        "east",
        "north",
        "south",
    ]
    assert len(region.containers) == 6
    assert {t.get_text() for t in visible[0].get_legend().get_texts()} == {"flag rate", "TPR"}
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_figure_marks_small_groups_and_skips_undefined_rates(odd: StageAudit) -> None:
    figure = stage_figure(odd)
    (ax,) = [a for a in figure.axes if a.get_visible()]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "tiny\nn=12 (small)" in ticks
    assert "graduates\nn=50" in ticks
    # Three flag rates, two TPRs: the graduates have no dropouts, hence no TPR.
    assert len(ax.containers) == 5


def test_markdown_has_a_table_per_stage(audited: FairnessAudit) -> None:
    text = render_markdown_table(audited)
    assert text.count("### Fairness at ") == 2
    assert "### Fairness at second_semester" in text
    header = (
        "| attribute | group | n | flag rate [95% CI] | TPR [95% CI] | FPR | precision | AUC "
        "| calibration gap | small |"
    )
    assert text.count(header) == 2
    rows = [line for line in text.splitlines() if line.startswith("| region | ")]
    assert len(rows) == 2 * 4  # 3 groups + the disparity row, per stage
    south = audited.stage("enrollment").groups[-1]
    assert south.group == "south"
    low, high = south.selection_rate_ci
    expected = (
        f"| region | south | {south.count} | {south.selection_rate:.2f} [{low:.2f}, {high:.2f}]"
    )
    assert expected in text
    assert "Worst: demographic parity difference" in text
    assert "(region)" in text


def test_markdown_shows_small_and_undefined(odd: StageAudit) -> None:
    text = render_markdown_table(odd)
    tiny = next(line for line in text.splitlines() if line.startswith("| cohort | tiny |"))
    assert tiny.endswith("| yes |")
    graduates = next(
        line for line in text.splitlines() if line.startswith("| cohort | graduates |")
    )
    cells = [c.strip() for c in graduates.strip("|").split("|")]
    assert cells[4] == "n/a"  # TPR
    assert cells[7] == "n/a"  # AUC
    assert "- cohort / graduates: no dropouts: TPR and ROC-AUC undefined" in text
    assert "- cohort / tiny: n=12 is under the minimum group size 30: not compared" in text
