"""Resolve stage: find the base checkpoint on disk, from the Hub, a local folder or a GGUF file."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from hubpub.errors import StageError
from hubpub.sharedcache import exclusive
from hubpub.stages._child import run_child
from hubpub.stages.context import StageContext, StageOutput

logger = logging.getLogger(__name__)

CONVERT_TIMEOUT_SECONDS = 4 * 3600
_CONVERT_CHILD = "hubpub.stages._convert_child"
HUB_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model", "tokenizer*", "README.md"]


def run(ctx: StageContext) -> StageOutput:
    """Return the base checkpoint folder with the sha256 of every source file."""
    release = ctx.release
    source = release.source
    if source is not None and source.gguf_file is not None:
        gguf = source.path / source.gguf_file
        digest = ctx.hashes.sha256(gguf)
        base_dir, converted = _converted_gguf(gguf, digest, ctx.cache_dir / "gguf" / digest, ctx)
        return StageOutput(
            metrics={"kind": "gguf", "source_sha256": {source.gguf_file: digest}, "converted_now": converted},
            outputs={"base_dir": str(base_dir)},
        )
    if source is not None:
        return StageOutput(
            metrics={"kind": "local", "source_sha256": ctx.hashes.tree(source.path)},
            outputs={"base_dir": str(source.path)},
        )
    base_dir, revision = _from_hub(release.base_model, release.base_revision)
    return StageOutput(
        metrics={"kind": "hub", "revision": revision, "source_sha256": ctx.hashes.tree(base_dir)},
        outputs={"base_dir": str(base_dir)},
    )


def _from_hub(repo_id: str, revision: str | None) -> tuple[Path, str]:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    from hubpub.hubclient import source_hub

    source = source_hub()
    api = HfApi(endpoint=source.endpoint, token=source.token, library_name="hubpub")
    try:
        sha = api.model_info(repo_id, revision=revision).sha
        if sha is None:
            raise StageError(f"the Hub returned no commit sha for {repo_id}@{revision or 'main'}")
        folder = api.snapshot_download(repo_id, revision=sha, allow_patterns=HUB_PATTERNS)
    except RevisionNotFoundError:
        raise StageError(f"base_revision '{revision}' does not exist in {repo_id}") from None
    except RepositoryNotFoundError:
        raise StageError(f"base model {repo_id} was not found on the Hub (or needs a token)") from None
    except HfHubHTTPError as exc:
        raise StageError(f"could not download {repo_id}: {exc}") from None
    return Path(folder), sha


def _converted_gguf(gguf: Path, digest: str, target: Path, ctx: StageContext) -> tuple[Path, bool]:
    """Convert a GGUF file to a plain safetensors checkpoint once; later calls reuse it by sha256."""
    marker = target / "hubpub-converted.json"
    if marker.is_file():
        return target, False
    # Jobs sharing the cache folder wait for the one converting instead of converting again.
    with exclusive(target.with_name(f"{target.name}.lock")):
        if marker.is_file():
            return target, False
        for stale in target.parent.glob(f"{target.name}.*.partial"):
            shutil.rmtree(stale, ignore_errors=True)
        _convert_gguf(gguf, digest, target, marker, ctx)
    return target, True


def _convert_gguf(gguf: Path, digest: str, target: Path, marker: Path, ctx: StageContext) -> None:
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    logger.info("converting %s to a safetensors checkpoint (once per file)", gguf.name)
    converted = run_child(
        _CONVERT_CHILD,
        {"gguf": str(gguf), "target": str(partial)},
        ctx.output_dir,
        "convert",
        what=f"converting {gguf.name} with transformers",
        timeout=CONVERT_TIMEOUT_SECONDS,
    )
    if not converted["chat_template"]:
        logger.warning("%s carries no chat template", gguf.name)
    (partial / marker.name).write_text(
        json.dumps({"gguf_file": gguf.name, "sha256": digest, "dtype": "bfloat16"}, indent=2), encoding="utf-8"
    )
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
