"""Command line of the training job: `python -m training <command>`.

Commands import what they need when they run, so `--help` is instant and importing this module
does nothing. Known failures print one readable line and exit with a documented code
(common/exit_codes.py): 2 usage or configuration, 3 data (invalid file, checksum, download),
4 tracking server or registry, 5 promotion refused by the gate, 1 anything unexpected.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(
    help="Student dropout training job: train, evaluate, promote, explore.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="A local UCI-format file (overrides DATA_PATH). Default: the checked UCI download.",
    ),
]


def _settings(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from common.exit_codes import ExitCode
    from common.settings import describe_errors
    from training.config import TrainingSettings
    from training.log import configure_logging

    try:
        settings = TrainingSettings()
    except ValidationError as exc:
        _fail(f"invalid configuration: {describe_errors(exc)}", ExitCode.BAD_CONFIGURATION)
    updates = {k: v for k, v in overrides.items() if v is not None}
    settings = settings.model_copy(update=updates)
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail(message: str, code: int) -> None:
    from rich.console import Console

    # soft_wrap: one line however long, so logs and greps see the whole message.
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _guarded(action: Callable[[], T]) -> T:
    """Run a command body; typed errors become one line and their exit code."""
    from common.exit_codes import ExitCode
    from training.errors import TrainingError

    try:
        return action()
    except TrainingError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", ExitCode.INTERRUPTED)
    raise AssertionError("unreachable")  # pragma: no cover


def _print(*renderables: Any) -> None:
    import sys

    from rich.console import Console

    # Piped or in a log: wide enough that the metrics table is not wrapped into noise.
    Console(width=None if sys.stdout.isatty() else 170).print(*renderables)


AsOfOption = Annotated[
    datetime | None,
    typer.Option(
        "--as-of",
        formats=["%Y-%m-%d"],
        help="Take this date as today (LOOP_TODAY): replays, backfills, simulations.",
    ),
]


SourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data",
        help="A data source; give it again for more (`uci`, a local UCI-format file, or an "
        "s3:// URI such as an institution's dataset). Default: DATA_SOURCES, DATA_PATH, or "
        "the checked UCI download.",
    ),
]


@app.command()
def train(
    quick: Annotated[
        bool, typer.Option("--quick", help="A small search (< 60 s): tests and the demo.")
    ] = False,
    data: SourcesOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote the new version even if the gate refuses.")
    ] = False,
    trials: Annotated[
        int | None, typer.Option("--trials", min=1, help="XGBoost Optuna trials (full search).")
    ] = None,
) -> None:
    """Train, register a new version, and move the alias if it passes the champion gate."""
    one_file = data is not None and len(data) == 1 and not data[0].startswith("s3://")
    if one_file and data[0] != "uci":  # type: ignore[index]
        settings = _settings(data_path=Path(data[0]), search_trials=trials)  # type: ignore[index]
    else:
        settings = _settings(data_sources=",".join(data) if data else None, search_trials=trials)

    def body() -> None:
        from training.evaluation.report import NOTES, rich_table
        from training.run_summary import train_summary, write_summary
        from training.train import run_training

        result = run_training(settings, quick=quick, force=force)
        write_summary(
            settings, "train", train_summary(result, settings.model_name, settings.model_alias)
        )
        _print(
            rich_table(result.rows, f"Held-out quality ({len(result.rows)} models)"),
            f"[dim]{NOTES}[/]",
        )
        for row in result.rows:
            per_source = row.report.get("per_source") or {}
            if "registered" in row.name and per_source:
                _print(
                    "held-out ROC-AUC per source: "
                    + ", ".join(
                        f"{name} {m['roc_auc']:.3f} (n={int(m['count'])})"
                        for name, m in per_source.items()
                    )
                )
        from rich.markup import escape

        verdict = "promoted to" if result.decision.promote else "NOT promoted to"
        # escape: a fairness reason ends in "[groups: ...]", which rich would read as markup.
        _print(
            f"{settings.model_name} version {result.version} ({result.model_kind}) "
            f"{verdict} @{settings.model_alias}: {escape(result.decision.reason)}. "
            f"predict: {result.predict_ms_per_1000:.1f} ms/1000 rows; "
            f"wall time {result.seconds:.1f} s"
        )

    _guarded(body)


@app.command()
def evaluate(
    version: Annotated[str | None, typer.Option("--version", help="A version number.")] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", help="An alias (default MODEL_ALIAS).")
    ] = None,
    data: DataOption = None,
) -> None:
    """Score a registered version on the held-out split and print its metrics."""
    if version is not None and alias is not None:
        _fail("give --version or --alias, not both", 2)
    settings = _settings(data_path=data)

    def body() -> None:
        from training.evaluation.report import NOTES, ModelRow, rich_table
        from training.registry.operations import evaluate_registered

        model, report, warnings = evaluate_registered(settings, version=version, alias=alias)
        title = f"{settings.model_name} version {model.version} ({model.contract['model_kind']})"
        _print(rich_table([ModelRow(title, report)], "Held-out quality"), f"[dim]{NOTES}[/]")
        for warning in warnings:
            _print(f"[yellow]warning:[/] {warning}")

    _guarded(body)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="The version to put behind the alias.")],
    force: Annotated[
        bool, typer.Option("--force", help="Move the alias even if the gate refuses.")
    ] = False,
    data: DataOption = None,
) -> None:
    """Gate a registered version against the champion and move the alias if it passes."""
    settings = _settings(data_path=data)

    def body() -> None:
        from training.errors import PromotionRefusedError
        from training.registry.operations import promote_version

        decision = promote_version(settings, version, force=force)
        if not decision.promote:
            raise PromotionRefusedError(
                f"version {version} not promoted to @{settings.model_alias}: {decision.reason} "
                "(use --force to override)"
            )
        _print(
            f"{settings.model_name} version {version} is @{settings.model_alias} "
            f"({decision.reason})"
        )

    _guarded(body)


@app.command()
def explore(
    data: DataOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder of the report (default REPORTS_DIR).")
    ] = None,
) -> None:
    """Write a self-contained HTML exploration report of the data."""
    settings = _settings(data_path=data, reports_dir=out)

    def body() -> None:
        from training.data.explore import write_report

        path = write_report(settings)
        _print(f"exploration report: {path}")

    _guarded(body)


outcomes_app = typer.Typer(
    help="Outcomes (dropout.outcome.v1) a registrar reports: import them into the loop's store.",
    no_args_is_help=True,
)
dataset_app = typer.Typer(
    help="The institution's own labelled dataset, from captures and outcomes.",
    no_args_is_help=True,
)
app.add_typer(outcomes_app, name="outcomes")
app.add_typer(dataset_app, name="dataset")


@outcomes_app.command("import")
def outcomes_import(
    file: Annotated[Path, typer.Argument(help="CSV or JSON lines: student_id, outcome, ...")],
    as_of: AsOfOption = None,
) -> None:
    """Validate an outcome file and upload its valid rows to LOOP_URI/outcomes/."""
    settings = _settings(loop_today=as_of.date() if as_of else None)

    def body() -> None:
        from training.loop.operations import import_outcome_file

        summary = import_outcome_file(settings, file, settings.today())
        _print(
            f"{summary.file}: {summary.rows_valid} of {summary.rows_total} rows imported as "
            f"{summary.key} ({summary.rows_rejected} rejected"
            + (f": {summary.rejected_by_reason}" if summary.rejected_by_reason else "")
            + f"; {summary.duplicates_merged} duplicates merged)"
        )
        for example in summary.examples:
            _print(f"[yellow]rejected:[/] {example}")

    _guarded(body)


@app.command()
def monitor(as_of: AsOfOption = None) -> None:
    """Live quality: realized (captures joined with outcomes) and estimated (CBPE) per model
    version and stage, recorded in MLflow and pushed to the Pushgateway."""
    settings = _settings(loop_today=as_of.date() if as_of else None)

    def body() -> None:
        from training.loop.operations import champion_version, run_monitor
        from training.loop.report import monitor_table
        from training.run_summary import monitor_summary, write_summary

        report, facts = run_monitor(settings, today=settings.today())
        write_summary(settings, "monitor", monitor_summary(report, champion_version(settings)))
        _print(*monitor_table(report, facts))

    _guarded(body)


@dataset_app.command("build")
def dataset_build(as_of: AsOfOption = None) -> None:
    """Build the labelled, UCI-format dataset of the institution's own students (named by its
    sha256) into LOOP_URI/datasets/, and log it to MLflow. No student with both a captured
    record and an outcome yet is a normal state of the loop: it says so and exits 0."""
    settings = _settings(loop_today=as_of.date() if as_of else None)

    def body() -> None:
        from training.loop.operations import NothingToBuild, build_institution_dataset
        from training.run_summary import dataset_summary, write_summary

        try:
            dataset, uri = build_institution_dataset(settings, today=settings.today())
        except NothingToBuild as empty:
            write_summary(settings, "dataset", dataset_summary(None, None, str(empty)))
            _print(f"[yellow]no dataset built:[/] {empty}")
            return
        write_summary(settings, "dataset", dataset_summary(dataset, uri))
        excluded = dataset.summary.excluded.by_reason()
        _print(
            f"dataset {uri}: {dataset.rows} students of "
            f"{dataset.summary.students_with_outcome} with an outcome"
            + (f" (excluded: {excluded})" if excluded else "")
            + f"; sha256 {dataset.sha256}"
        )

    _guarded(body)


def main() -> None:
    app(prog_name="python -m training")
