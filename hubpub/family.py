"""Many variants and repos at once: spec discovery, the CI matrix from a release tag, republishing.

Release tags follow one scheme:

- `release/<family>/v<version>` releases every variant of the family;
- `release/<family>/<variant>/v<version>` releases one variant.

`<family>` is the spec's `family`, `<variant>` the variant's name (its scheme unless named), and
`<version>` must equal the spec's `version`, so a tag can never publish something the spec does
not say.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubpub.errors import UsageError
from hubpub.spec import SpecFile

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
    """One job of the release matrix: a variant, where its spec is, and the runner labels it needs."""

    spec: str
    variant: str
    family: str | None
    repo_id: str
    version: str | None
    runs_on: list[str]

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
