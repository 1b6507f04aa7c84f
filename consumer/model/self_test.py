"""The self-test every version passes before it serves: the contract's `input_example`,
validated and scored by the consumer's own path, must give `expected_example_output`."""

from __future__ import annotations

import math
from typing import Final

import orjson

from common.contract import Contract
from consumer.model.outcomes import LoadOutcome, ModelLoadError
from consumer.scoring.batch import accepted_rows, score_rows
from consumer.scoring.served_model import ServedModel
from consumer.scoring.validation import Rejected

SELF_TEST_TOLERANCE: Final = 1e-6


def close_enough(actual: list[float], expected: list[float], tolerance: float = 1e-6) -> bool:
    """Whether two probability lists agree within `tolerance`."""
    return len(actual) == len(expected) and all(
        math.isclose(a, e, rel_tol=0.0, abs_tol=tolerance)
        for a, e in zip(actual, expected, strict=True)
    )


def self_test(model: ServedModel) -> None:
    """Validates and scores the examples; raises ModelLoadError(validation_failed) unless every
    one is accepted and scored as the contract expects."""
    contract: Contract = model.contract
    version = model.version
    try:
        verdicts = [
            model.validator.validate(
                orjson.dumps({"student_id": f"example-{i}", "student_features": features})
            )
            for i, features in enumerate(contract.input_example)
        ]
        refused = [v for v in verdicts if isinstance(v, Rejected)]
        if refused:
            raise ModelLoadError(
                LoadOutcome.VALIDATION_FAILED,
                f"self-test: {len(refused)} example(s) refused, first: {refused[0].reason}: "
                f"{refused[0].detail}",
                version,
            )
        results, _ = score_rows(model, accepted_rows(model, verdicts))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED, f"self-test raised {type(exc).__name__}: {exc}", version
        ) from exc
    failed = [r for r in results if isinstance(r, str)]
    if failed:
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED,
            f"self-test: {len(failed)} example(s) not scored, first: {failed[0]}",
            version,
        )
    actual = [float(r[0]) for r in results if not isinstance(r, str)]
    if not close_enough(actual, contract.expected_example_output, SELF_TEST_TOLERANCE):
        raise ModelLoadError(
            LoadOutcome.VALIDATION_FAILED,
            f"self-test: scores {actual} differ from expected_example_output "
            f"{contract.expected_example_output}",
            version,
        )
