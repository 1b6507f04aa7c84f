"""Operator tools shipped with the consumer: a replay producer and a stream reader."""
