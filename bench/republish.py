"""Card-only republish of a 20-repo family on the embedded Hub: --jobs 1 (the baseline) against --jobs 8.

The 20 repos hold the demo W4A16 release under 20 names (one family, 20 variants with the demo's
recipe), so every card changes when re-rendered: each run reads 20 manifests and READMEs, renders
20 cards and makes 20 README-only commits. Each timing starts from its own copy of the same Hub.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from hubpub import api
from hubpub.hub import HubServer, Identity
from hubpub.hubclient import HubTarget
from hubpub.manifest import MANIFEST_NAME
from hubpub.stages import publish

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
TOKEN = "hf_bench_token"
REPOS = 20
FAMILY = "bench-family"


def family_spec(folder: Path) -> Path:
    variants = "".join(
        f"  - {{name: v{index:02d}, scheme: W4A16, group_size: 64, repo_id: bench/SmolLM2-135M-W4A16-{index:02d}}}\n"
        for index in range(REPOS)
    )
    path = folder / f"{FAMILY}.yaml"
    path.write_text(
        f"family: {FAMILY}\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\nlicense: apache-2.0\nversion: 0.1.0\n"
        f"variants:\n{variants}",
        encoding="utf-8",
    )
    return path


def publish_family(staged: Path, scratch: Path, hub_dir: Path) -> None:
    with HubServer(hub_dir, tokens={TOKEN: Identity(name="bench", orgs=("bench",))}) as server:
        target = HubTarget("url", server.url, TOKEN)
        for index in range(REPOS):
            copy = scratch / f"staged-{index:02d}"
            shutil.copytree(staged, copy)
            manifest = json.loads((copy / MANIFEST_NAME).read_text(encoding="utf-8"))
            manifest.update(
                repo_id=f"bench/SmolLM2-135M-W4A16-{index:02d}",
                variant=f"v{index:02d}",
                family=FAMILY,
                spec_file=f"{FAMILY}.yaml",
            )
            (copy / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
            publish.run(copy, target, private=False, tag=None, roundtrip=False)
            shutil.rmtree(copy)


def timed_republish(spec: Path, hub_dir: Path, jobs: int) -> tuple[float, list[str]]:
    with HubServer(hub_dir, tokens={TOKEN: Identity(name="bench", orgs=("bench",))}) as server:
        started = time.perf_counter()
        results = api.republish([spec], card_only=True, jobs=jobs, hub=server.url)
        return time.perf_counter() - started, [result.status for result in results]


def main() -> None:
    os.environ["HF_TOKEN"] = TOKEN
    os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    (outcome,) = api.release([DEMO_SPEC], variant="W4A16", push=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hubpub-bench-republish-") as scratch_name:
        scratch = Path(scratch_name)
        spec = family_spec(scratch)
        published = scratch / "hub-published"
        publish_family(outcome.staged_dir, scratch, published)
        for jobs in (1, 8):
            hub_dir = scratch / f"hub-jobs-{jobs}"
            shutil.copytree(published, hub_dir)
            seconds, statuses = timed_republish(spec, hub_dir, jobs)
            assert statuses == ["updated"] * REPOS, statuses
            again, statuses = timed_republish(spec, hub_dir, jobs)
            assert statuses == ["unchanged"] * REPOS, statuses
            rows.append((jobs, seconds, again))

    baseline = rows[0][1]
    lines = [
        "## Card-only republish of 20 repos (bench/republish.py)",
        "",
        "20 published repos of one family on the embedded Hub (in-process, loopback);"
        " `api.republish(card_only=True)` reads each repo's manifest and README, re-renders its card and makes"
        " one README-only commit. The no-op column is a second run, when no card changes and nothing is committed.",
        "",
        "| jobs | 20 cards updated | ratio to --jobs 1 | no-op run |",
        "|---|---|---|---|",
    ]
    for jobs, seconds, again in rows:
        lines.append(f"| {jobs} | {seconds:.2f} s | {baseline / seconds:.2f}× faster | {again:.2f} s |")
    write_section("republish", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
