"""Command line of the consumer: `python -m consumer <command>`.

Each command imports what it needs when it runs, so `--help` is instant and importing this module
does nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from consumer.config import ConsumerSettings

app = typer.Typer(
    help="Student dropout consumer: stream service, shard processor, offline scoring, tools.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> ConsumerSettings:
    """The settings from the environment; a bad value is one readable line and exit code 2."""
    from common.settings import load_settings
    from consumer.config import ConsumerSettings

    return load_settings(ConsumerSettings)


@app.command()
def run() -> None:
    """Run the service: the KCL MultiLangDaemon, its shard processors, /metrics and health."""
    from consumer.service.supervisor import run_service

    raise typer.Exit(run_service(_settings()))


@app.command()
def process() -> None:
    """One shard's record processor; the KCL daemon starts it and talks to it on stdin/stdout."""
    from consumer.intake.kcl_processor import main

    main(_settings())


@app.command()
def score(
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="JSON lines file, one input record per line.")
    ],
    output_path: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the results (default: stdout)."),
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(
            "--model-uri",
            help="Model to use (models:/name/3, a local folder). Default: MODEL_NAME@MODEL_ALIAS "
            "from the registry at MLFLOW_TRACKING_URI.",
        ),
    ] = None,
) -> None:
    """Score a JSON lines file offline with exactly the stream's validate/score/encode path."""
    from consumer.tools.offline import score_file

    raise typer.Exit(score_file(_settings(), input_path, output_path, model_uri))


@app.command("render-properties")
def render_properties(
    output_path: Annotated[
        Path | None, typer.Option("--output", "-o", help="Default: KCL_PROPERTIES_PATH.")
    ] = None,
) -> None:
    """Write the KCL MultiLangDaemon properties file rendered from the environment."""
    from consumer.service.kcl_properties import write_properties

    settings = _settings()
    path = write_properties(settings, output_path or settings.kcl_properties_path)
    typer.echo(str(path))


@app.command()
def replay(
    data: Annotated[
        Path | None,
        typer.Option(
            help="UCI data file (semicolon CSV). Default: DATA_PATH or the cached download."
        ),
    ] = None,
    rate: Annotated[float, typer.Option(help="Records per second.")] = 100.0,
    count: Annotated[int, typer.Option(help="How many records to send.")] = 500,
    malformed_share: Annotated[
        float, typer.Option(help="Share of deliberately malformed records (0..1).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed for row choice and malformations.")] = 7,
    stream: Annotated[str | None, typer.Option(help="Default: INPUT_STREAM.")] = None,
) -> None:
    """Replay dataset rows as student events on the input stream, at a chosen rate."""
    from common.data_files import DataFileError
    from common.exit_codes import ExitCode
    from consumer.tools.producer import replay as do_replay

    settings = _settings()
    try:
        do_replay(
            settings, data, rate, count, malformed_share, seed, stream or settings.input_stream
        )
    except DataFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(ExitCode.DATA) from None


@app.command()
def tail(
    stream: Annotated[str | None, typer.Option(help="Default: PREDICTIONS_STREAM.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show, highest risk first.")] = 20,
    wait_seconds: Annotated[
        float, typer.Option(help="Stop reading when no new record came for this long.")
    ] = 5.0,
) -> None:
    """Read a predictions (or dead-letter) stream and print it as a table."""
    from consumer.tools.reader import tail as do_tail

    settings = _settings()
    do_tail(settings, stream or settings.predictions_stream, limit, wait_seconds)
