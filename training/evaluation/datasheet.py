"""A short datasheet of the training data (after Gebru et al., "Datasheets for Datasets"),
logged beside the model card: where the data comes from, who is in it (counts and dropout rate
per student group), what it lacks, and how it was split. Figures come from the data itself;
the paragraph on the UCI file applies only when the UCI file is one of the sources."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from common.data_files import UCI_SHA256
from training.data.reading import Dataset, source_name
from training.data.split import Split
from training.fairness import GroupDefinition, assign_groups

UCI_ABOUT = """\
The UCI "Predict Students' Dropout and Academic Success" data (UCI id 697,
doi:10.24432/C5MC89, CC BY 4.0; Realinho et al., *Data* 7(11):146, 2022) was built by the
Polytechnic Institute of Portalegre (Portugal) from several of its own databases, for the early
identification of students at risk. One row per student enrolled in one of its undergraduate
degrees between 2008/09 and 2018/19: demographic and socio-economic attributes known at
enrollment, the academic path of the first two semesters, and the region's unemployment,
inflation and GDP of the enrollment year. The target is the student's status at the end of the
normal duration of the course (Dropout, Enrolled, Graduate). The creators removed anomalies and
missing values before publication: the file has no missing value and no free text; students are
not identifiable by name or number."""

ABSENT = """\
- Not in the data: ethnicity, disability beyond "educational special needs", household income
  (parents' qualifications and occupations stand in for socio-economic background), the
  reasons a student left, and anything after the second semester.
- Gender is recorded as two codes only (UCI: 1 male, 0 female).
- "Enrolled" students are counted as not dropping out (the model is dropout vs the rest),
  although some of them will leave later."""


def _composition(
    features: pd.DataFrame, target: pd.Series, definitions: Sequence[GroupDefinition]
) -> str:
    labels = assign_groups(features, definitions)
    y = target.to_numpy()
    lines = [
        "| attribute | group | students | share | dropout rate |",
        "|---|---|---:|---:|---:|",
    ]
    for definition in definitions:
        column = labels[definition.name]
        for group in definition.group_labels():
            members = (column == group).to_numpy()
            count = int(members.sum())
            if count == 0:
                continue
            lines.append(
                f"| {definition.name} | {group} | {count} | {count / len(column):.1%} | "
                f"{y[members].mean():.1%} |"
            )
    return "\n".join(lines)


def render_datasheet(dataset: Dataset, split: Split, definitions: Sequence[GroupDefinition]) -> str:
    """The datasheet as Markdown."""
    sources = dataset.sources or (dataset.source,)
    source_lines = "\n".join(
        f"- `{source_name(s)}`: {s.origin}, sha256 `{s.sha256}`, "
        f"{int((dataset.origin == source_name(s)).sum())} students"
        for s in sources
    )
    labels = ", ".join(f"{k}: {v}" for k, v in dataset.labels.value_counts().items())
    missing = int(dataset.features.isna().sum().sum())
    uci = (
        UCI_ABOUT
        if any(s.sha256 == UCI_SHA256 for s in sources)
        else ("An institution's own records in the UCI format (validated like the UCI file).")
    )
    descriptions = "\n".join(f"- `{d.name}` (`{d.column}`): {d.description}" for d in definitions)
    return f"""# Datasheet: training data

## Motivation and collection

{uci}

## Sources

{source_lines}

Combined: {len(dataset.features)} students ({labels}); {missing} missing values.

## Composition by student group

Every student of the data (training and held-out parts), by the groups the model is audited on:

{_composition(dataset.features, dataset.target, definitions)}

Groups and why (training/fairness/groups.py):

{descriptions}

## What the data lacks

{ABSENT}

## How it is used here

- Validated against the 36-attribute schema (types, codes, ranges) before anything is trained.
- Held-out split: {split.test_size:.0%} stratified on dropout vs rest (and on the source when
  there are several), seed {split.seed}: {len(split.x_train)} training and {len(split.x_test)}
  held-out students. The held-out part is used for the quality report, the fairness audit and
  the gate only.
- Partial records (a student at enrollment or after the first semester) are simulated by
  removing later attributes from complete ones.
- Personal data: the files are kept by the training job's data cache and the MLflow run's
  dataset record (digest and schema, not the rows); an institution's own records fall under its
  own data-protection duties.
"""
