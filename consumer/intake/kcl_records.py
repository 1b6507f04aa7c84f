"""KCL records (as amazon_kclpy hands them over) as the batch path's input records."""

from __future__ import annotations

import base64
from typing import TypeAlias

from amazon_kclpy import messages

from consumer.records import InputRecord, SourcePosition

KclRecord: TypeAlias = messages.Record


def to_input_record(record: KclRecord, shard_id: str) -> InputRecord:
    """Base64 data, sequence and sub-sequence numbers (one per user record of a KPL
    aggregate, which the KCL de-aggregates), arrival time."""
    sub_sequence = record.sub_sequence_number
    return InputRecord(
        data=base64.b64decode(record.data),
        position=SourcePosition(
            shard_id=shard_id,
            sequence_number=str(record.sequence_number),
            sub_sequence_number=None if sub_sequence is None else int(sub_sequence),
            arrival_timestamp_ms=int(record.timestamp_millis),
        ),
    )
