"""The release record: what ran, with what, and what it measured (`hubpub-manifest.json`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MANIFEST_NAME = "hubpub-manifest.json"
MANIFEST_SCHEMA_VERSION = 1

StageStatus = Literal["done", "cached", "skipped", "failed"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageResult(Record):
    """What one stage produced. Stored beside its cached output, copied into the manifest."""

    stage: str
    status: StageStatus
    fingerprint: str
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    """MiB: the largest resident memory of the hubpub process or of any one child process during the stage."""
    peak_gpu_mb: dict[str, float] | None = None
    """MiB per CUDA device index: the most memory reserved there by the hubpub process or any one child."""
    reason: str | None = Field(default=None, description="Why the stage was skipped or failed.")
    metrics: dict[str, Any] = {}
    outputs: dict[str, str] = {}
    ci_run_url: str | None = None

    @field_validator("peak_gpu_mb", mode="before")
    @classmethod
    def _one_device_before(cls, value: Any) -> Any:
        # Older manifests recorded one number: what the hubpub process itself allocated on cuda:0.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"0": float(value)}
        return value


class Manifest(Record):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    hubpub_version: str
    spec_file: str
    spec_sha256: str
    variant: str
    family: str | None
    repo_id: str
    release: dict[str, Any]
    base_model: str
    base_revision: str | None
    source_sha256: dict[str, str]
    recipe: dict[str, Any]
    calibration: dict[str, Any] | None
    versions: dict[str, str | None]
    device: str | None
    ci_run_url: str | None
    stages: dict[str, StageResult]
    resources: dict[str, Any] | None = Field(
        default=None, description="The resource plan's estimates per stage (bytes), beside the measured peaks."
    )

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
        return path

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        return cls.model_validate(json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8")))


def ci_run_url() -> str | None:
    """The GitHub Actions run URL when running under Actions."""
    server = os.environ.get("GITHUB_SERVER_URL")
    repository = os.environ.get("GITHUB_REPOSITORY")
    run_id = os.environ.get("GITHUB_RUN_ID")
    if server and repository and run_id:
        return f"{server}/{repository}/actions/runs/{run_id}"
    return None
