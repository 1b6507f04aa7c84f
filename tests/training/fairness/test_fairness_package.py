"""The package's promises: no other training module imported (only `common`, which the
consumer shares), no work at import time, and the whole pipeline on the real UCI data."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import training.fairness
from training.fairness import (
    STAGES,
    assign_groups,
    audit_stages,
    fairness_decision,
    render_markdown_table,
    select_groups,
)

PACKAGE = Path(training.fairness.__file__).parent
ALLOWED_ROOTS = {
    "__future__", "numpy", "pandas", "sklearn", "fairlearn", "matplotlib", "pydantic", "training",
    "common",
}  # fmt: skip
STAGE_COLUMNS = {
    "enrollment": ["Admission grade", "Age at enrollment", "Debtor", "Tuition fees up to date",
                   "Scholarship holder", "Gender"],
    "first_semester": ["Curricular units 1st sem (approved)", "Curricular units 1st sem (grade)"],
    "second_semester": ["Curricular units 2nd sem (approved)", "Curricular units 2nd sem (grade)"],
}  # fmt: skip


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_imports_only_its_own_modules_and_the_allowed_libraries() -> None:
    modules = sorted(PACKAGE.glob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "groups.py", "audit.py", "gate.py"}
    for module in modules:
        for name in _imports(module):
            root = name.split(".")[0]
            assert root in ALLOWED_ROOTS or root in sys.stdlib_module_names, (module, name)
            if root == "training":
                assert name.startswith("training.fairness"), (module, name)


def test_import_does_no_work() -> None:
    code = (
        "import sys, training.fairness; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('matplotlib', 'mlflow') or (m.startswith('training.') and "
        "not m.startswith('training.fairness'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PACKAGE.parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_real_data_end_to_end(uci_frame: pd.DataFrame) -> None:
    """Three stages of a quick model on the UCI file: audit, gate, card; the bounded labels."""
    groups = assign_groups(uci_frame, select_groups())
    y = (uci_frame["Target"] == "Dropout").to_numpy().astype(int)
    probs, columns = {}, []
    for stage in STAGES:
        columns += STAGE_COLUMNS[stage]
        model = make_pipeline(StandardScaler(), LogisticRegression()).fit(uci_frame[columns], y)
        probs[stage] = model.predict_proba(uci_frame[columns])[:, 1]
    result = audit_stages(y, probs, 0.4, groups, n_bootstrap=50, seed=0)
    frame = result.to_frame()
    assert len(frame) == 3 * 16  # 2 + 4 + 2 + 2 + 2 + 2 + 2 groups per stage, none unknown
    assert set(frame["stage"]) == set(STAGES)
    assert frame["count"].groupby([frame["stage"], frame["attribute"]]).sum().eq(len(y)).all()
    # Later stages know more: the model's AUC rises within every large group.
    auc = frame[~frame["small"]].pivot_table("roc_auc", ["attribute", "group"], "stage")
    assert (auc["second_semester"] > auc["enrollment"]).all()
    worst = result.worst
    assert worst["dp_difference"].attribute in {d.name for d in select_groups()}
    assert np.isfinite(worst["eo_difference"].value)
    decision = fairness_decision(worst, None, tolerance=0.05, cap=1.0, force=False)
    assert decision.passed
    assert decision.reason.startswith("first model: ")
    card = render_markdown_table(result)
    assert card.count("### Fairness at ") == 3
