"""Publish stage: push the staged repo folder as one commit, prove it from the Hub, then tag it.

Only what differs from the remote head is sent. Nothing is committed when nothing changed. A repo
that holds another spec's or family's release is refused unless forced. The commit counts once the
tree it landed holds every staged file (by sha256 or git blob id). Then the release is downloaded
into a fresh folder, compared byte for byte, and loaded in transformers; only after that round trip
is the commit tagged, because tags are never moved.
"""

from __future__ import annotations

import difflib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubpub.errors import PublishError, StageError, UnfinishedPublishError
from hubpub.hashing import sha256_file
from hubpub.hubclient import HubTarget, UploadPlan, client, commit_plan, ensure_tag, plan_upload
from hubpub.manifest import MANIFEST_NAME, Manifest, ci_run_url
from hubpub.placement import CPU, Placement
from hubpub.quality import heldout_text
from hubpub.stages._child import run_child
from hubpub.version import __version__

logger = logging.getLogger(__name__)

ROUNDTRIP_TIMEOUT_SECONDS = 1800
PERPLEXITY_TOLERANCE = 1e-3


@dataclass
class PublishResult:
    repo_id: str
    url: str
    target: str
    status: str  # committed, unchanged, dry-run
    commit: str | None
    plan: UploadPlan
    tag: str | None = None
    tag_status: str | None = None
    roundtrip: dict[str, Any] = field(default_factory=dict)
    readme_diff: str | None = None
    confirmed_files: int = 0
    """Staged files found on the Hub at `commit` with their sha256 or git blob id before tagging."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "repo_id": self.repo_id,
            "url": self.url,
            "target": self.target,
            "status": self.status,
            "commit": self.commit,
            "plan": self.plan.as_dict(),
            "tag": self.tag,
            "tag_status": self.tag_status,
            "roundtrip": self.roundtrip,
            "readme_diff": self.readme_diff,
            "confirmed_files": self.confirmed_files,
        }


def run(
    staged: Path,
    target: HubTarget,
    *,
    private: bool,
    tag: str | None,
    dry_run: bool = False,
    force: bool = False,
    roundtrip: bool = True,
    placement: Placement = CPU,
) -> PublishResult:
    """Publish one staged release folder to `target`; `placement` is where the round trip loads the model."""
    manifest = Manifest.read(staged)
    repo_id = manifest.repo_id
    api = client(target)
    try:
        plan = plan_upload(api, repo_id, staged)
        if plan.repo_exists and not force:
            _guard(api, target, repo_id, manifest)
        result = PublishResult(repo_id, target.repo_url(repo_id), target.label, "dry-run", plan.head, plan, tag)
        if dry_run:
            result.readme_diff = _readme_diff(api, repo_id, staged, plan)
            return result
        if not plan.repo_exists:
            api.create_repo(repo_id, private=private, exist_ok=True)
            plan = plan_upload(api, repo_id, staged)
            result.plan = plan
        if plan.empty:
            result.status, result.commit = "unchanged", plan.head
        else:
            title = f"hubpub {__version__}: release {manifest.variant} of {manifest.spec_file}" + (
                f" ({tag})" if tag else ""
            )
            description = f"Published by hubpub {__version__}." + (f" CI run: {ci_run_url()}" if ci_run_url() else "")
            result.commit = commit_plan(api, target, repo_id, staged, plan, title=title, description=description)
            result.status = "committed"
        result.confirmed_files = len(plan.local)
    except PublishError:
        raise
    except Exception as exc:
        raise PublishError(f"publishing {repo_id} to {target.label} failed: {target.scrub(str(exc))}") from None
    if result.commit is None:
        return result
    previous = plan.head if result.status == "committed" else None
    if roundtrip:
        try:
            result.roundtrip = _roundtrip(api, target, repo_id, result.commit, staged, manifest, placement)
        except Exception as exc:
            problem = str(exc) if isinstance(exc, PublishError) else f"the round trip could not run: {exc}"
            raise _untagged(
                result,
                previous,
                target.scrub(problem),
                held="holds every staged file (checked by sha256 or git blob id) but failed the round trip",
                repair="fix the cause, then run the push again; it sends only what differs, and tags once the round"
                " trip passes",
            ) from None
    if tag:
        try:
            result.tag_status = ensure_tag(api, repo_id, tag, result.commit)
        except Exception as exc:
            raise _untagged(
                result,
                previous,
                f"tagging {repo_id}@{result.commit[:12]} {tag} failed: {target.scrub(str(exc))}",
                held="holds every staged file" + (" and passed the round trip" if roundtrip else ""),
                repair="run the push again; it sends nothing and tags it",
            ) from None
    return result


def _untagged(result: PublishResult, previous: str | None, problem: str, *, held: str, repair: str) -> PublishError:
    """Publishing stopped after the commit landed: say where main is, why it has no tag, and what to do."""
    assert result.commit is not None
    before = f" (it was at {previous[:12]} before this push)" if previous else ""
    tag = f" {result.tag}" if result.tag else ""
    return UnfinishedPublishError(
        f"{problem}\nOn the Hub: main of {result.repo_id} is at {result.commit[:12]}{before}, which {held};"
        f" this push did not tag it{tag}.\nTo repair: {repair}"
    )


def _readme_diff(api: Any, repo_id: str, staged: Path, plan: UploadPlan) -> str | None:
    """The unified diff of the model card the push would change, for --dry-run."""
    touched = {change.path for change in plan.added + plan.changed + plan.deleted}
    if "README.md" not in touched:
        return None
    before = ""
    if plan.repo_exists and "README.md" not in {change.path for change in plan.added}:
        remote = api.hf_hub_download(repo_id, "README.md", cache_dir=tempfile.mkdtemp(prefix="hubpub-readme-"))
        before = Path(remote).read_text(encoding="utf-8")
    local = staged / "README.md"
    after = local.read_text(encoding="utf-8") if local.is_file() else ""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), "remote/README.md", "staged/README.md"
    )
    return "".join(lines)


def _guard(api: Any, target: HubTarget, repo_id: str, ours: Manifest) -> None:
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id, MANIFEST_NAME, cache_dir=tempfile.mkdtemp(prefix="hubpub-guard-"))
    except EntryNotFoundError:
        return
    theirs = json.loads(Path(path).read_text(encoding="utf-8"))
    same_family = ours.family is not None and theirs.get("family") == ours.family
    same_spec = ours.family is None and theirs.get("spec_file") == ours.spec_file
    same_variant = theirs.get("variant") == ours.variant
    if not ((same_family or same_spec) and same_variant):
        origin = f"family {theirs.get('family')!r}, spec {theirs.get('spec_file')!r}, variant {theirs.get('variant')!r}"
        raise PublishError(
            f"{repo_id} holds a hubpub release from {origin}, not this one; refusing to push over it"
            " (use --force to overwrite)"
        )


def _roundtrip(
    api: Any, target: HubTarget, repo_id: str, commit: str, staged: Path, manifest: Manifest, placement: Placement
) -> dict[str, Any]:
    """Download the published commit into a fresh folder; it must match and load in transformers."""
    with tempfile.TemporaryDirectory(prefix="hubpub-roundtrip-") as scratch:
        downloaded = Path(api.snapshot_download(repo_id, revision=commit, local_dir=Path(scratch) / "repo"))
        mismatched = [
            path.relative_to(staged).as_posix()
            for path in sorted(staged.rglob("*"))
            if path.is_file()
            and (
                not (downloaded / path.relative_to(staged)).is_file()
                or sha256_file(downloaded / path.relative_to(staged)) != sha256_file(path)
            )
        ]
        if mismatched:
            raise PublishError(f"the published {repo_id}@{commit[:12]} differs from the staged folder: {mismatched}")
        verified = manifest.stages.get("verify")
        prompts = [item["prompt"] for item in verified.metrics.get("generations", [])][:1] if verified else []
        request = {
            "checkpoint": str(downloaded),
            "base_dir": None,
            "prompts": prompts or ["Hello"],
            "max_new_tokens": 8,
            "heldout": str(heldout_text()),
            "window": 512,
            "placement": placement.as_request(),
        }
        try:
            loaded = run_child(
                "hubpub.stages._verify_child",
                request,
                Path(scratch),
                "roundtrip",
                what=f"loading the published {repo_id} in transformers",
                timeout=ROUNDTRIP_TIMEOUT_SECONDS,
            )
        except StageError as exc:
            raise PublishError(target.scrub(str(exc))) from None
    verified_perplexity = verified.metrics["perplexity"]["quantized"] if verified else None
    if verified_perplexity is not None and abs(loaded["perplexity"] / verified_perplexity - 1) > PERPLEXITY_TOLERANCE:
        raise PublishError(
            f"the published {repo_id} measures perplexity {loaded['perplexity']:.4f}, not the verified"
            f" {verified_perplexity:.4f}"
        )
    return {
        "files_identical": True,
        "loaded": True,
        "perplexity": loaded["perplexity"],
        "verified_perplexity": verified_perplexity,
        "generation": loaded["generations"][0]["output"] if loaded["generations"] else None,
    }
