"""Training configuration from environment variables (no prefix: docker-compose and Terraform
use the same names). Nothing is read at import time: build `TrainingSettings()` when needed."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from common.data_files import UCI_SHA256, UCI_URL
from common.settings import CommonSettings


class TrainingSettings(CommonSettings):
    """Every knob of the training job. Each field is one environment variable; the registry and
    model names come from CommonSettings (common/settings.py)."""

    # --- data ------------------------------------------------------------------------------
    data_path: Path | None = Field(default=None, validation_alias="DATA_PATH")
    data_url: str = Field(default=UCI_URL, validation_alias="DATA_URL")
    data_sha256: str = Field(default=UCI_SHA256, validation_alias="DATA_SHA256")
    data_cache_dir: Path = Field(default=Path(".cache/data"), validation_alias="DATA_CACHE_DIR")
    data_download_timeout: float = Field(
        default=60.0, gt=0, validation_alias="DATA_DOWNLOAD_TIMEOUT"
    )

    # --- tracking and registry ---------------------------------------------------------------
    mlflow_experiment_name: str = Field(
        default="student-dropout", validation_alias="MLFLOW_EXPERIMENT_NAME"
    )
    # Where a new experiment stores artifacts. Unset: the server decides; for a sqlite URI,
    # an `mlartifacts` folder next to the database (not the current directory).
    mlflow_artifact_location: str | None = Field(
        default=None, validation_alias="MLFLOW_ARTIFACT_LOCATION"
    )
    gate_tolerance: float = Field(default=0.005, ge=0, le=0.5, validation_alias="GATE_TOLERANCE")

    # --- split and search --------------------------------------------------------------------
    split_seed: int = Field(default=42, validation_alias="SPLIT_SEED")
    test_size: float = Field(default=0.2, gt=0, lt=0.5, validation_alias="TEST_SIZE")
    search_seed: int = Field(default=42, validation_alias="SEARCH_SEED")
    search_trials: int = Field(default=40, ge=1, validation_alias="SEARCH_TRIALS")
    quick_trials: int = Field(default=5, ge=1, validation_alias="QUICK_TRIALS")
    cv_folds: int = Field(default=5, ge=2, le=10, validation_alias="CV_FOLDS")
    # Training copies per student: one complete plus partial ones (stage masks, dropout).
    augment_copies: int = Field(default=3, ge=1, le=10, validation_alias="AUGMENT_COPIES")
    augment_max_missing: float = Field(
        default=0.5, ge=0, le=1, validation_alias="AUGMENT_MAX_MISSING"
    )
    # Share of partial copies that carry exactly the seed's 7-attribute record (sent today).
    augment_pattern_share: float = Field(
        default=0.2, ge=0, le=1, validation_alias="AUGMENT_PATTERN_SHARE"
    )
    top_k_factors: int = Field(default=3, ge=1, le=10, validation_alias="TOP_K_FACTORS")
    n_jobs: int = Field(default=2, ge=1, le=64, validation_alias="N_JOBS")

    # --- the learning loop (docs/learning-loop.md); its store is LOOP_URI ----------------------
    # Several data sources for `train`, comma-separated: `uci` (the checked download), local
    # paths or s3:// URIs (an institution's dataset). Unset: DATA_PATH, else `uci`.
    data_sources: str | None = Field(default=None, validation_alias="DATA_SOURCES")
    # The `uci` source read from a copy in object storage (the scheduled job on AWS does not
    # depend on the UCI site at run time); its sha256 must still be DATA_SHA256.
    uci_mirror_uri: str | None = Field(default=None, validation_alias="UCI_MIRROR_URI")
    # A folder (s3:// or local) where each command leaves `<command>.json` describing what it
    # did, for the scheduled workflow (training/run_summary.py). Unset: nothing is written.
    run_summary_uri: str | None = Field(default=None, validation_alias="RUN_SUMMARY_URI")
    # The date the loop's commands take as today (replays, backfills, the demo's "a term
    # later"): outcomes dated after it are refused, predictions count only before an outcome's
    # date. Unset: the current UTC date.
    loop_today: date | None = Field(default=None, validation_alias="LOOP_TODAY")
    monitor_bootstrap: int = Field(default=1000, ge=10, validation_alias="MONITOR_BOOTSTRAP")
    # Where the monitor pushes its figures for Prometheus; empty: MLflow only.
    pushgateway_url: str | None = Field(
        default="http://127.0.0.1:9091", validation_alias="PUSHGATEWAY_URL"
    )

    # --- outputs -----------------------------------------------------------------------------
    reports_dir: Path = Field(default=Path("reports"), validation_alias="REPORTS_DIR")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="LOG_LEVEL"
    )
    # auto: coloured lines on a terminal, JSON lines otherwise (the job's container).
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto", validation_alias="LOG_FORMAT"
    )

    def today(self) -> date:
        return self.loop_today or datetime.now(tz=UTC).date()

    @field_validator("data_sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.strip().lower()
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("DATA_SHA256 must be a 64-character hex sha256 digest")
        return value
