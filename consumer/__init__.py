"""Streaming consumer: scores student events from Kinesis with the @champion model.

The package does no work at import time; entry points live in `consumer.cli`.
"""
