"""A model version ready to serve: its contract, the validator built from it, and its scorer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.contract import Contract
from consumer.scoring.scorer import PredictFn, Scorer
from consumer.scoring.validation import RecordValidator


@dataclass(frozen=True)
class ServedModel:
    """A model version ready to serve: its contract, validator and scorer."""

    name: str
    version: str
    contract: Contract
    validator: RecordValidator
    scorer: Scorer
    path: Path | None = None
    uri: str | None = None

    @classmethod
    def build(
        cls,
        *,
        name: str,
        version: str,
        contract: Contract,
        predict: PredictFn,
        max_record_bytes: int,
        path: Path | None = None,
        uri: str | None = None,
    ) -> ServedModel:
        return cls(
            name=name,
            version=version,
            contract=contract,
            validator=RecordValidator(contract, max_record_bytes),
            scorer=Scorer(
                predict,
                contract.attribute_names,
                threshold=contract.threshold,
                bands=frozenset(band.name for band in contract.risk_bands),
            ),
            path=path,
            uri=uri,
        )
