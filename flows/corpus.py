"""The `corpus` flow: read the configured real sources into normalised records."""

from __future__ import annotations

from prefect import flow

from components.artifacts import StageResult
from components.config import SourcesConfig
from flows.common import run_stage


@flow(name="corpus")
def corpus(cfg: SourcesConfig = SourcesConfig()) -> StageResult:
    """Fetch (pinned, checksummed) and read every configured source into `docs/<source>.parquet`."""
    return run_stage("corpus", cfg)
