"""Many variants and repos at once: spec discovery, the CI matrix from a release tag, republishing.

Release tags follow one scheme:

- `release/<family>/v<version>` releases every variant of the family;
- `release/<family>/<variant>/v<version>` releases one variant.

`<family>` is the spec's `family`, `<variant>` the variant's name (its scheme unless named), and
`<version>` must equal the spec's `version`, so a tag can never publish something the spec does
not say.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubpub.errors import HubpubError, PublishError, UsageError
from hubpub.hubclient import HubTarget, client, commit_files
from hubpub.manifest import MANIFEST_NAME, Manifest, StageResult, ci_run_url
from hubpub.spec import ReleaseSpec, SpecFile
from hubpub.version import __version__

TAG_PREFIX = "release/"
_SPEC_KEY = re.compile(r"^(?:base_model|variants):", re.MULTILINE)


def spec_paths(paths: list[Path]) -> list[Path]:
    """Files as given; folders expand to the release specs under them (lm-eval task files are skipped)."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        candidates = sorted([*path.rglob("*.yaml"), *path.rglob("*.yml")])
        specs = [candidate for candidate in candidates if _looks_like_spec(candidate)]
        if not specs:
            raise UsageError(f"{path}: no release spec (a YAML file with `base_model` or `variants`) under it")
        found.extend(specs)
    return found


def _looks_like_spec(path: Path) -> bool:
    try:
        return bool(_SPEC_KEY.search(path.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


@dataclass(frozen=True)
class MatrixEntry:
    """One job of the release matrix: a variant, where its spec is, the runner labels it needs and its time limit."""

    spec: str
    variant: str
    family: str | None
    repo_id: str
    version: str | None
    runs_on: list[str]
    timeout_minutes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReleaseTag:
    family: str
    variant: str | None
    version: str

    @classmethod
    def parse(cls, tag: str) -> ReleaseTag:
        parts = tag.removeprefix("refs/tags/").split("/")
        if parts[0] + "/" != TAG_PREFIX or len(parts) not in (3, 4) or not all(parts):
            raise UsageError(
                f"tag '{tag}' does not follow the release tag scheme: use release/<family>/v<version>"
                " or release/<family>/<variant>/v<version>"
            )
        version = parts[-1]
        if not version.startswith("v") or len(version) == 1:
            raise UsageError(f"tag '{tag}': the last part must be v<version>, such as v1.0.0")
        return cls(family=parts[1], variant=parts[2] if len(parts) == 4 else None, version=version[1:])


def matrix(spec_files: list[SpecFile], tag: str | None) -> list[MatrixEntry]:
    """The variants a tag releases (every variant when `tag` is None), as matrix entries."""
    selected = [(spec_file, release) for spec_file in spec_files for release in spec_file.releases]
    if tag is not None:
        selected = _select_by_tag(spec_files, ReleaseTag.parse(tag), tag)
    return [
        MatrixEntry(
            spec=str(spec_file.path),
            variant=release.variant,
            family=release.family,
            repo_id=release.repo_id,
            version=release.version,
            runs_on=list(release.runs_on),
            timeout_minutes=release.timeout_minutes,
        )
        for spec_file, release in selected
    ]


def _select_by_tag(spec_files: list[SpecFile], parsed: ReleaseTag, tag: str) -> list[tuple[SpecFile, Any]]:
    families = [spec_file for spec_file in spec_files if spec_file.family == parsed.family]
    if not families:
        known = sorted({spec_file.family for spec_file in spec_files if spec_file.family})
        raise UsageError(
            f"tag '{tag}' names family '{parsed.family}', which no spec declares"
            f" (families: {', '.join(known) if known else 'none'})"
        )
    if len(families) > 1:
        raise UsageError(
            f"family '{parsed.family}' is declared by several specs ({', '.join(str(f.path) for f in families)});"
            " a tag must name exactly one"
        )
    (spec_file,) = families
    releases = list(spec_file.releases)
    if parsed.variant is not None:
        releases = [release for release in releases if release.variant == parsed.variant]
        if not releases:
            names = ", ".join(release.variant for release in spec_file.releases)
            raise UsageError(f"tag '{tag}' names variant '{parsed.variant}', which {spec_file.path} lacks ({names})")
    for release in releases:
        if release.version != parsed.version:
            stated = f"version {release.version}" if release.version else "no version"
            raise UsageError(
                f"tag '{tag}' releases version {parsed.version}, but {spec_file.path} gives"
                f" {release.variant} {stated}: bump `version` in the spec or fix the tag"
            )
    return [(spec_file, release) for release in releases]


@dataclass(frozen=True)
class RepublishResult:
    """What republishing did to one repo: unchanged, updated (with its commit), dry-run, or failed (why)."""

    repo_id: str
    variant: str
    status: str
    commit: str | None = None
    url: str | None = None
    reason: str | None = None
    readme_diff: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Published:
    release: ReleaseSpec
    manifest: Manifest
    manifest_text: str
    readme: str
    head: str


ManifestUpdate = Callable[[_Published, Path], Manifest]
"""Given a published repo (and a scratch folder), the manifest its new card is rendered from."""


def republish_cards(
    spec_files: list[SpecFile], target: HubTarget, *, jobs: int = 4, dry_run: bool = False
) -> list[RepublishResult]:
    """Re-render the card of every published variant from the manifest stored in its repo.

    Works from a fresh checkout: each repo's `hubpub-manifest.json` and README come from the Hub.
    A repo gets one README-only commit when its card changed and none otherwise; a failure in one
    repo is reported in its result and does not stop the others.
    """
    return _update_family(
        spec_files, target, jobs=jobs, dry_run=dry_run, update=lambda found, _: found.manifest, purpose="card only"
    )


def reverify(
    spec_files: list[SpecFile],
    target: HubTarget,
    *,
    vllm_python: Path | None,
    jobs: int = 1,
    dry_run: bool = False,
) -> list[RepublishResult]:
    """Check every published variant in vLLM again: the static preflight with the current rules, and the
    real load when `vllm_python` is given. The weights are downloaded, never uploaded; the new facts go
    into the repo's manifest and card in one commit, and only when they changed.
    """

    def update(found: _Published, scratch: Path) -> Manifest:
        return _reverified_manifest(found, target, vllm_python, scratch)

    return _update_family(spec_files, target, jobs=jobs, dry_run=dry_run, update=update, purpose="vLLM re-verification")


def _update_family(
    spec_files: list[SpecFile],
    target: HubTarget,
    *,
    jobs: int,
    dry_run: bool,
    update: ManifestUpdate,
    purpose: str,
) -> list[RepublishResult]:
    api = client(target)
    releases = [(spec_file, release) for spec_file in spec_files for release in spec_file.releases]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        fetched = list(pool.map(lambda item: _fetch(api, target, item[1]), releases))
        published = {
            release.repo_id: found for (_, release), found in zip(releases, fetched, strict=True) if found is not None
        }
        work = [
            (spec_file, release, fetched_item)
            for (spec_file, release), fetched_item in zip(releases, fetched, strict=True)
        ]
        return list(
            pool.map(
                lambda item: _update_one(
                    api, target, item[0], item[1], item[2], published, dry_run=dry_run, update=update, purpose=purpose
                ),
                work,
            )
        )


def _fetch(api: Any, target: HubTarget, release: ReleaseSpec) -> _Published | RepublishResult | None:
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        head = str(api.model_info(release.repo_id).sha)
        with tempfile.TemporaryDirectory(prefix="hubpub-republish-") as scratch:
            manifest_path = api.hf_hub_download(release.repo_id, MANIFEST_NAME, revision=head, cache_dir=scratch)
            manifest_text = Path(manifest_path).read_text(encoding="utf-8")
            readme_path = api.hf_hub_download(release.repo_id, "README.md", revision=head, cache_dir=scratch)
            readme = Path(readme_path).read_text(encoding="utf-8")
        manifest = Manifest.model_validate_json(manifest_text)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    except EntryNotFoundError:
        return RepublishResult(
            release.repo_id, release.variant, "failed", reason="the repo has no hubpub manifest or README to re-render"
        )
    except Exception as exc:
        return RepublishResult(release.repo_id, release.variant, "failed", reason=target.scrub(f"reading it: {exc}"))
    return _Published(release, manifest, manifest_text, readme, head)


def _update_one(
    api: Any,
    target: HubTarget,
    spec_file: SpecFile,
    release: ReleaseSpec,
    fetched: _Published | RepublishResult | None,
    published: dict[str, _Published | RepublishResult],
    *,
    dry_run: bool,
    update: ManifestUpdate,
    purpose: str,
) -> RepublishResult:
    url = target.repo_url(release.repo_id)
    if fetched is None:
        return RepublishResult(release.repo_id, release.variant, "not published", url=url)
    if isinstance(fetched, RepublishResult):
        return fetched
    try:
        _check_same_release(fetched)
        with tempfile.TemporaryDirectory(prefix="hubpub-update-") as scratch:
            manifest = update(fetched, Path(scratch))
        text = _render(spec_file, fetched, manifest, published)
        changes: dict[str, bytes] = {}
        if text != fetched.readme:
            changes["README.md"] = text.encode("utf-8")
        if manifest != fetched.manifest:
            changes[MANIFEST_NAME] = manifest_bytes(manifest)
        if not changes:
            return RepublishResult(release.repo_id, release.variant, "unchanged", commit=fetched.head, url=url)
        diff = "".join(
            difflib.unified_diff(
                fetched.readme.splitlines(keepends=True), text.splitlines(keepends=True), "hub/README.md", "README.md"
            )
        )
        if dry_run:
            return RepublishResult(release.repo_id, release.variant, "dry-run", url=url, readme_diff=diff)
        commit = commit_files(
            api,
            target,
            release.repo_id,
            changes,
            parent=fetched.head,
            title=f"hubpub {__version__}: update the model card of {release.variant} ({purpose})",
        )
        return RepublishResult(release.repo_id, release.variant, "updated", commit=commit, url=url, readme_diff=diff)
    except HubpubError as error:
        return RepublishResult(release.repo_id, release.variant, "failed", url=url, reason=str(error))


def manifest_bytes(manifest: Manifest) -> bytes:
    return (manifest.model_dump_json(indent=2) + "\n").encode("utf-8")


def _check_same_release(found: _Published) -> None:
    release, manifest = found.release, found.manifest
    if manifest.variant != release.variant or (manifest.family or None) != (release.family or None):
        raise PublishError(
            f"{release.repo_id} holds family {manifest.family!r} variant {manifest.variant!r}, not this spec's"
            f" {release.family!r} {release.variant!r}; refusing to update it"
        )
    if manifest.recipe != release.recipe():
        raise PublishError(
            f"the spec's recipe for {release.variant} no longer matches the published weights of {release.repo_id}:"
            " a card-only update cannot change the quantization; run `hubpub release`"
        )


def _render(
    spec_file: SpecFile, this: _Published, manifest: Manifest, published: dict[str, _Published | RepublishResult]
) -> str:
    from hubpub.stages import card

    family = [
        manifest if sibling.repo_id == this.release.repo_id else found.manifest
        for sibling in spec_file.releases
        if isinstance(found := published.get(sibling.repo_id), _Published)
    ]
    return card.rerender(this.release, manifest, family, spec_file.releases)


def _reverified_manifest(found: _Published, target: HubTarget, vllm_python: Path | None, scratch: Path) -> Manifest:
    """Download the published files and run the vLLM stage on them; the manifest with its new vLLM record."""
    from hubpub.hashing import HashCache
    from hubpub.measure import measured
    from hubpub.stages import card, vllm
    from hubpub.stages.context import StageContext

    api = client(target)
    try:
        checkpoint = Path(api.snapshot_download(found.release.repo_id, revision=found.head, local_dir=scratch / "repo"))
    except Exception as exc:
        raise PublishError(f"downloading {found.release.repo_id}: {target.scrub(str(exc))}") from None
    manifest = found.manifest
    quantize = manifest.stages["quantize"].model_copy(update={"outputs": {"checkpoint": str(checkpoint)}})
    output_dir = scratch / "vllm"
    output_dir.mkdir()
    ctx = StageContext(
        release=found.release,
        spec_path=Path(manifest.spec_file),
        cache_dir=scratch / "cache",
        output_dir=output_dir,
        previous={**manifest.stages, "quantize": quantize},
        hashes=HashCache(scratch / "cache" / "sha256.json"),
        vllm_python=vllm_python,
    )
    with measured() as measurement:
        output = vllm.run(ctx)
        if output.metrics.get("smoke", {}).get("ok"):
            # The re-rendered card will show the vLLM snippet: it must run on these files first.
            snippet = card.snippets(found.release, manifest)["vllm"]
            output.metrics["vllm_snippet"] = card.run_vllm_code(
                snippet, found.release.repo_id, checkpoint, output_dir, vllm_python
            )
    previous = manifest.stages.get("vllm")
    if previous is not None and previous.metrics == output.metrics and previous.reason == output.skipped:
        return manifest
    result = StageResult(
        stage="vllm",
        status="skipped" if output.skipped else "done",
        fingerprint=f"reverified-{found.head}",
        seconds=round(measurement.seconds, 3),
        peak_rss_mb=round(measurement.peak_rss_mb, 1),
        peak_gpu_mb=measurement.rounded_gpu(),
        reason=output.skipped,
        metrics={**output.metrics, "reverified_commit": found.head},
        ci_run_url=ci_run_url(),
    )
    return manifest.model_copy(update={"stages": {**manifest.stages, "vllm": result}})
