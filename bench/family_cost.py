"""What a release costs against plain scripts doing the same work, for one variant and for families.

Each row pairs `hubpub release SPEC --no-push` from an empty work folder (no cache) with the plain script
`bench/plain_release.py` run once per variant, alternated run by run (the order flips every run). The
spec is the demo's with `verify.vllm: off`, since the plain script loads nothing in vLLM, and without its
evaluation except in the last row, where the plain script also runs lm-eval on its base and its
quantized model. hubpub's numbers include everything it does besides: the resource plan, hashing, the
manifest, the card rendered and its Transformers snippet run on the staged files.

Wall time is the whole command's; memory is the peak PSS of the command's process tree (bench/treemem.py),
measured the same way for both.

    python bench/family_cost.py [--runs 2] [--only one,two,four,eval] [--json FILE] [--report-from FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import measure_or_replay
from treemem import run_measured

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
DEMO = ROOT / "model_specs" / "demo"
PLAIN = ROOT / "bench" / "plain_release.py"
GROUP_SIZE = 64
ROWS: dict[str, dict[str, Any]] = {
    "one": {"label": "one variant", "variants": ["W4A16"], "evaluate": False, "wall_target": 1.15},
    "two": {"label": "family of 2", "variants": ["W4A16", "W4A16_ASYM"], "evaluate": False, "wall_target": 0.8},
    "four": {
        "label": "family of 4",
        "variants": ["W4A16", "W4A16_ASYM", "W8A8", "W8A16"],
        "evaluate": False,
        "wall_target": 0.7,
    },
    "eval": {"label": "family of 2, with evaluation", "variants": ["W4A16", "W8A8"], "evaluate": True},
}
# Peak memory: one variant against one plain run; a family against one plain run (variants are not held
# in memory together).
MEMORY_TARGET = 1.15


def write_spec(folder: Path, variants: list[str], evaluate: bool) -> Path:
    spec = yaml.safe_load((DEMO / "smollm2-135m.yaml").read_text(encoding="utf-8"))
    spec["source"]["path"] = str((DEMO / spec["source"]["path"]).resolve())
    spec["calibration"]["dataset"] = str(DEMO / spec["calibration"]["dataset"])
    spec["verify"]["vllm"] = "off"
    if evaluate:
        spec["evaluation"]["include_path"] = [str(DEMO / path) for path in spec["evaluation"]["include_path"]]
    else:
        del spec["evaluation"]
    spec["variants"] = [
        {
            "name": scheme,
            "scheme": scheme,
            **({"group_size": GROUP_SIZE} if scheme in ("W4A16", "W4A16_ASYM", "W8A16") else {}),
            "repo_id": f"demo/SmolLM2-135M-Instruct-{scheme.replace('_', '-')}",
        }
        for scheme in variants
    ]
    path = folder / f"{'-'.join(variants)}{'-eval' if evaluate else ''}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def plain(variants: list[str], evaluate: bool) -> dict[str, float]:
    runs = [
        run_measured(
            [sys.executable, str(PLAIN), "--scheme", scheme, "--group-size", str(GROUP_SIZE)]
            + (["--evaluate"] if evaluate else [])
        )
        for scheme in variants
    ]
    return {"seconds": sum(run["seconds"] for run in runs), "peak_mb": max(run["peak_mb"] for run in runs)}


def hubpub(spec: Path, variants: list[str], scratch: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(dir=scratch))
    measured: dict[str, Any] = run_measured(
        [HUBPUB, "-q", "release", str(spec), "--no-push", "--workdir", str(workdir)]
    )
    manifests = [json.loads(path.read_text()) for path in workdir.glob("releases/*/staged/hubpub-manifest.json")]
    by_variant = {manifest["variant"]: manifest["stages"] for manifest in manifests}
    measured["stages"] = {
        variant: {name: stage["seconds"] for name, stage in by_variant[variant].items() if stage["status"] == "done"}
        for variant in variants
    }
    return measured


def run(rows: list[str], runs: int, start: int = 0) -> dict[str, list[dict[str, Any]]]:
    samples: dict[str, list[dict[str, Any]]] = {row: [] for row in rows}
    with tempfile.TemporaryDirectory(prefix="hubpub-family-bench-") as scratch_name:
        scratch = Path(scratch_name)
        for index in range(start, start + runs):
            for row in rows:
                settings = ROWS[row]
                spec = write_spec(scratch, settings["variants"], settings["evaluate"])
                pair: dict[str, Any] = {}
                order = ("plain", "hubpub") if index % 2 == 0 else ("hubpub", "plain")
                for side in order:
                    if side == "plain":
                        pair["plain"] = plain(settings["variants"], settings["evaluate"])
                    else:
                        pair["hubpub"] = hubpub(spec, settings["variants"], scratch)
                samples[row].append(pair)
                print(f"run {index + 1} {row}: {json.dumps(pair)}", flush=True)
    return samples


def _median(pairs: list[dict[str, Any]], side: str, key: str) -> float:
    return float(statistics.median(pair[side][key] for pair in pairs))


def report(samples: dict[str, list[dict[str, Any]]]) -> str:
    runs = max(len(pairs) for pairs in samples.values())
    lines = [
        "## A family's cost against plain scripts (bench/family_cost.py)",
        "",
        "`hubpub release SPEC --no-push` from an empty work folder against `bench/plain_release.py` (convert the GGUF,"
        " quantize RTN, save, reload, generate, perplexity of base and quantized; with evaluation, lm-eval on base and"
        " quantized too) run once per variant, as a user without hubpub would. The spec is the demo's with"
        " `verify.vllm: off` (the plain script loads nothing in vLLM). hubpub's time includes its card, rendered and"
        " its Transformers snippet run. Memory: peak PSS of the whole process tree, both sides; for N plain runs,"
        f" the largest. Alternated run by run (the side that goes first flips each run); median of {runs} pairs per"
        " row unless the row says otherwise.",
        "",
        "| work | plain script(s) | hubpub | wall ratio | target | met"
        " | peak memory, plain → hubpub | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    one_plain_mb = _median(samples["one"], "plain", "peak_mb") if "one" in samples else None
    for row, pairs in samples.items():
        settings = ROWS[row]
        plain_s, hubpub_s = _median(pairs, "plain", "seconds"), _median(pairs, "hubpub", "seconds")
        plain_mb, hubpub_mb = _median(pairs, "plain", "peak_mb"), _median(pairs, "hubpub", "peak_mb")
        wall = hubpub_s / plain_s
        target = settings.get("wall_target")
        # A family's memory is held against one plain run's: its variants must not be in memory together. With
        # evaluation, against one plain run that evaluates too.
        reference_mb = plain_mb if row in ("one", "eval") or one_plain_mb is None else one_plain_mb
        memory = hubpub_mb / reference_mb
        memory_target = None if settings["evaluate"] else MEMORY_TARGET
        count = len(settings["variants"])
        plain_cell = f"{count} × {plain_s / count:.1f} s = {plain_s:.1f} s" if count > 1 else f"{plain_s:.1f} s"
        lines.append(
            f"| {settings['label']} ({', '.join(settings['variants'])}){_pairs(len(pairs), runs)} | {plain_cell}"
            f" | {hubpub_s:.1f} s | **{wall:.2f}** | {f'≤ {target}' if target else '–'}"
            f" | {_met(wall, target)} | {reference_mb:,.0f} → {hubpub_mb:,.0f} MiB | **{memory:.2f}**"
            f" | {f'≤ {memory_target}' if memory_target else '–'} | {_met(memory, memory_target)} |"
        )
    lines += ["", "Where hubpub's time went (median seconds per stage, first variant · each further variant):", ""]
    lines += ["| work | " + " | ".join(STAGES) + " |", "|---|" + "---|" * len(STAGES)]
    for row, pairs in samples.items():
        first, further = _stage_medians(pairs)
        cells = [
            f"{first.get(stage, 0):.1f} · {further.get(stage, 0):.1f}" if further else f"{first.get(stage, 0):.1f}"
            for stage in STAGES
        ]
        lines.append(f"| {ROWS[row]['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


STAGES = ("resolve", "quantize", "verify", "evaluate", "card")


def _stage_medians(pairs: list[dict[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    first: dict[str, list[float]] = {}
    further: dict[str, list[float]] = {}
    for pair in pairs:
        variants = list(pair["hubpub"]["stages"].values())
        for index, stages in enumerate(variants):
            for stage, seconds in stages.items():
                (first if index == 0 else further).setdefault(stage, []).append(seconds)
    return (
        {stage: statistics.median(values) for stage, values in first.items()},
        {stage: statistics.median(values) for stage, values in further.items()},
    )


def _pairs(count: int, usual: int) -> str:
    return "" if count == usual else f", {count} pair{'s' if count > 1 else ''}"


def _met(ratio: float, target: float | None) -> str:
    return "–" if target is None else "yes" if ratio <= target else "no"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--start", type=int, default=0, help="the first run's index: which side goes first alternates")
    parser.add_argument("--only", default=",".join(ROWS), help="rows, comma-separated: " + ", ".join(ROWS))
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    parser.add_argument("--report-from", type=Path, help="write the report from samples saved with --json")
    arguments = parser.parse_args()
    rows, runs, start = arguments.only.split(","), arguments.runs, arguments.start
    measure_or_replay(arguments.report_from, arguments.json, lambda: run(rows, runs, start), report, "family_cost")


if __name__ == "__main__":
    main()
