"""What the training job and the consumer configure alike: the registry, the model, AWS, and
the rules every setting follows.

- Each field is one environment variable (no prefix: compose and Terraform use the same names).
- An empty variable means "not set" for every optional setting: `None`, which for an endpoint
  means the AWS default (that is how ECS task definitions switch the emulators off).
- A bad value stops the command before it does anything, with one line naming the variable,
  the problem and the value, and exit code 2 (`load_settings`).
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, TypeVar

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.exit_codes import ExitCode

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _allows_none(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return (origin is typing.Union or origin is types.UnionType) and type(None) in typing.get_args(
        annotation
    )


class CommonSettings(BaseSettings):
    """The shared names. Subclasses add their own fields; defaults run the embedded stack."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    mlflow_tracking_uri: str = Field(
        default="http://127.0.0.1:5000", validation_alias="MLFLOW_TRACKING_URI"
    )
    model_name: str = Field(default="student-dropout", validation_alias="MODEL_NAME")
    model_alias: str = Field(default="champion", validation_alias="MODEL_ALIAS")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    # The learning loop's store (docs/learning-loop.md): the consumers capture into it,
    # outcomes are imported into it, the monitor and the dataset builder read it.
    loop_uri: str = Field(default="s3://dropout-loop/", validation_alias="LOOP_URI")
    # The embedded stack's moto serves S3 on the DynamoDB port; empty means the AWS default.
    loop_s3_endpoint_url: str | None = Field(
        default="http://127.0.0.1:8000", validation_alias="LOOP_S3_ENDPOINT_URL"
    )

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object, info: ValidationInfo) -> object:
        if value == "" and info.field_name is not None:
            field = cls.model_fields[info.field_name]
            if _allows_none(field.annotation):
                return None
        return value


def describe_errors(error: ValidationError) -> str:
    """One line: each bad variable, what is wrong with it and the value it had."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
        for e in error.errors()
    )


def load_settings(cls: type[SettingsT], **values: Any) -> SettingsT:
    """The settings from the environment; a bad value ends the process with one readable line
    on standard error and exit code 2."""
    try:
        return cls(**values)
    except ValidationError as error:
        print(f"error: invalid configuration: {describe_errors(error)}", file=sys.stderr)
        raise SystemExit(ExitCode.BAD_CONFIGURATION) from None
