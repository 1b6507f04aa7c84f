"""Settings of the embedded stack (ports, folders, streams), from environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", populate_by_name=True)

    stack_dir: Path = Field(default=REPO_ROOT / ".stack", validation_alias="STACK_DIR")
    host: str = Field(default="127.0.0.1", validation_alias="STACK_HOST")
    kinesis_port: int = Field(default=4568, validation_alias="KINESIS_PORT")
    kinesis_tls_port: int = Field(default=4567, validation_alias="KINESIS_TLS_PORT")
    dynamodb_port: int = Field(default=8000, validation_alias="DYNAMODB_PORT")
    mlflow_port: int = Field(default=5000, validation_alias="MLFLOW_PORT")
    metrics_port: int = Field(default=9108, validation_alias="METRICS_PORT")
    prometheus_port: int = Field(default=9090, validation_alias="PROMETHEUS_PORT")
    # The learning loop's monitor pushes its figures to the Pushgateway (training's default).
    pushgateway_port: int = Field(default=9091, validation_alias="PUSHGATEWAY_PORT")
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")
    input_stream: str = Field(default="student-events", validation_alias="INPUT_STREAM")
    predictions_stream: str = Field(
        default="student-predictions", validation_alias="PREDICTIONS_STREAM"
    )
    dead_letter_stream: str = Field(
        default="student-dead-letters", validation_alias="DEAD_LETTER_STREAM"
    )
    input_shards: int = Field(default=4, ge=1, validation_alias="INPUT_SHARDS")
    output_shards: int = Field(default=2, ge=1, validation_alias="OUTPUT_SHARDS")
    kcl_application_name: str = Field(
        default="dropout-consumer", validation_alias="KCL_APPLICATION_NAME"
    )
    model_name: str = Field(default="student-dropout", validation_alias="MODEL_NAME")
    # The learning loop's store: moto serves S3 on the DynamoDB port (docs/learning-loop.md).
    loop_bucket: str = Field(default="dropout-loop", validation_alias="LOOP_BUCKET")
    loop_prefix: str = Field(default="", validation_alias="LOOP_PREFIX")

    @classmethod
    def on_free_ports(cls, stack_dir: Path, **values: object) -> StackSettings:
        """Settings of a stack in `stack_dir` whose services take ports no one else holds."""
        from devstack.ports import free_port

        ports = {
            name: free_port()
            for name in (
                "kinesis_port",
                "kinesis_tls_port",
                "dynamodb_port",
                "mlflow_port",
                "metrics_port",
                "prometheus_port",
                "pushgateway_port",
            )
        }
        return cls(stack_dir=stack_dir, **{**ports, **values})

    @property
    def kinesis_url(self) -> str:
        return f"http://{self.host}:{self.kinesis_port}"

    @property
    def dynamodb_url(self) -> str:
        return f"http://{self.host}:{self.dynamodb_port}"

    @property
    def loop_uri(self) -> str:
        """Where captures, outcomes and datasets live: `s3://bucket/prefix/`."""
        prefix = self.loop_prefix.strip("/")
        return f"s3://{self.loop_bucket}/{prefix + '/' if prefix else ''}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def pushgateway_url(self) -> str:
        """PUSHGATEWAY_URL of the training commands (the monitor pushes there)."""
        return f"http://{self.host}:{self.pushgateway_port}"

    @property
    def logs_dir(self) -> Path:
        return self.stack_dir / "logs"

    @property
    def pids_dir(self) -> Path:
        return self.stack_dir / "pids"
