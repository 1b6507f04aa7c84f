"""Offline scoring: `python -m consumer score --input FILE.jsonl [--output F] [--model-uri U]`.

Runs exactly the stream's validate -> score -> encode path (consumer/scoring/batch.py) on a
file of JSON lines: one input line (any bytes; a trailing CR is dropped) is one record and
yields one output line, a prediction or a dead letter, in input order. The source position of
line n is shard "offline", sequence number "n". A JSON summary goes to standard error.

Exit codes (common/exit_codes.py): 0 when the file was scored (dead letters included), 3 when
the input cannot be read, 4 when the registry or the model cannot be reached, 7 when the model
is refused (off contract, self-test failed, unloadable), 6 when the output cannot be written.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Final

import orjson

from common.exit_codes import ExitCode
from consumer.config import ConsumerSettings
from consumer.model.loader import ModelLoader
from consumer.model.outcomes import ModelLoadError
from consumer.observe.logs import configure_logging
from consumer.records import InputRecord, SourcePosition
from consumer.scoring.batch import BatchCounts, run_batch
from consumer.scoring.served_model import ServedModel

OFFLINE_SHARD_ID: Final = "offline"
CHUNK_RECORDS: Final = 500


class InputReadError(Exception):
    """Reading the input failed part way (an I/O error, not a bad record)."""


def _lines(source: IO[bytes]) -> Iterator[bytes]:
    while True:
        try:
            line = source.readline()
        except OSError as exc:
            raise InputReadError(str(exc)) from exc
        if not line:
            return
        yield line


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def read_records(lines: Iterable[bytes]) -> Iterator[InputRecord]:
    """Input records of a JSON lines stream, one per line, numbered from 1."""
    for number, line in enumerate(lines, start=1):
        data = line[:-1] if line.endswith(b"\n") else line
        if data.endswith(b"\r"):
            data = data[:-1]
        yield InputRecord(data, SourcePosition(OFFLINE_SHARD_ID, str(number), 0, None))


def _chunks(records: Iterator[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    chunk: list[InputRecord] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def score_stream(model: ServedModel, source: IO[bytes], sink: IO[bytes]) -> dict[str, object]:
    """Scores every line of `source` into `sink`; returns the summary counts."""
    counts = BatchCounts()
    total = 0
    for chunk in _chunks(read_records(_lines(source)), CHUNK_RECORDS):
        result = run_batch(model, chunk)
        sink.write(b"".join(output.data + b"\n" for output in result.outputs))
        total += len(result.outputs)
        counts.merge(result.counts)
    return {
        "records": total,
        "predictions": counts.predictions,
        "at_risk": counts.at_risk,
        "not_at_risk": counts.not_at_risk,
        "dead_letters": counts.dead_letters,
        "reasons": dict(sorted(counts.reasons.items())),
        "model": {"name": model.name, "version": model.version},
    }


def score_file(
    settings: ConsumerSettings,
    input_path: Path,
    output_path: Path | None,
    model_uri: str | None,
) -> int:
    """The `score` command; returns the process exit code."""
    configure_logging(settings.log_level)
    started = time.perf_counter()
    try:
        source = input_path.open("rb")
    except OSError as exc:
        _error(f"cannot read input {input_path}: {exc.strerror or exc}")
        return ExitCode.DATA
    with source:
        loader = ModelLoader.from_settings(settings)
        try:
            model = loader.load_uri(model_uri) if model_uri else loader.load_champion()
        except ModelLoadError as exc:
            where = model_uri or (
                f"models:/{settings.model_name}@{settings.model_alias} "
                f"at {settings.mlflow_tracking_uri}"
            )
            _error(f"no model could be loaded from {where} ({exc.outcome.value}): {exc}")
            # Retrying helps when the registry is away; never when the model itself is refused.
            return ExitCode.MODEL_REFUSED if exc.outcome.permanent else ExitCode.REGISTRY
        try:
            sink = output_path.open("wb") if output_path else sys.stdout.buffer
        except OSError as exc:
            _error(f"cannot write output {output_path}: {exc.strerror or exc}")
            return ExitCode.OUTPUT_WRITE
        try:
            summary = score_stream(model, source, sink)
            sink.flush()
        except InputReadError as exc:
            _error(f"cannot read input {input_path}: {exc}")
            return ExitCode.DATA
        except OSError as exc:
            _error(f"cannot write output: {exc}")
            return ExitCode.OUTPUT_WRITE
        finally:
            if output_path:
                sink.close()
    summary["seconds"] = round(time.perf_counter() - started, 3)
    summary["output"] = str(output_path) if output_path else "stdout"
    sys.stderr.write(orjson.dumps({"summary": summary}).decode() + "\n")
    sys.stderr.flush()
    return ExitCode.OK
