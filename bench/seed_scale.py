"""The seed's scale: a model of SmolLM2-1.7B-Instruct's shape through every stage that runs on this CPU.

A randomly initialised model with SmolLM2-1.7B-Instruct's config (1.71 B parameters, bf16 checkpoint
3.4 GB; bench/gpu_quantize.py builds it once) is released W4A16 (RTN, group 128) without evaluation,
from an empty work folder, to an embedded Hub in a temporary folder with its round trip: resolve,
preflight, quantize, verify (float32 on the CPU), the real vLLM stage, the card with its snippet run,
publish. Per stage: wall time and the peak PSS of hubpub's whole process tree (bench/resource_plan.py
samples it every 50 ms and charges it to the running stage). Target: peak ≤ 2× the bf16 checkpoint. The
checkpoint's size is held against the size hubpub computes before quantizing (the resource plan).

    python bench/seed_scale.py [--json FILE] [--report-from FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import measure_or_replay
from resource_plan import RANDOM_BASE, measure_release, random_model_spec

PEAK_TARGET = 2.0
STAGES = ("resolve", "preflight", "quantize", "verify", "vllm", "card", "publish")


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubpub-seed-scale-") as scratch:
        folder = Path(scratch)
        spec = random_model_spec(folder)
        workdir = folder / "work"
        stages = measure_release(spec, workdir, folder / "hub")
        manifest = json.loads(next(workdir.glob("releases/*/staged/hubpub-manifest.json")).read_text())
    return {
        "stages": {key.split(":", 1)[1]: value for key, value in stages.items()},
        "bf16_checkpoint_bytes": (RANDOM_BASE / "model.safetensors").stat().st_size,
        "planned_checkpoint_bytes": manifest["resources"]["checkpoint_bytes"],
        "checkpoint_bytes": manifest["stages"]["quantize"]["metrics"]["checkpoint_bytes"],
        "parameters": manifest["resources"]["parameters"],
        "verify_dtype": manifest["stages"]["verify"]["metrics"]["dtype"],
        "verify_weights_dtype": manifest["stages"]["verify"]["metrics"]["weights_dtype"],
        "vllm": manifest["stages"]["vllm"]["metrics"].get("summary") or manifest["stages"]["vllm"]["status"],
    }


def report(results: dict[str, Any]) -> str:
    bf16 = results["bf16_checkpoint_bytes"]
    lines = [
        "## The seed's scale: SmolLM2-1.7B shape through every CPU stage (bench/seed_scale.py)",
        "",
        f"A randomly initialised model of SmolLM2-1.7B-Instruct's shape ({results['parameters'] / 1e9:.2f} B"
        f" parameters, bf16 checkpoint {bf16 / 1e9:.2f} GB), W4A16 RTN group 128, no evaluation, published to a"
        " local Hub with its round trip. Peak: PSS of hubpub's whole process tree during the stage.",
        "",
        "| stage | wall time | peak memory | ÷ bf16 checkpoint | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for stage in STAGES:
        figures = results["stages"].get(stage)
        if figures is None:
            continue
        ratio = figures["peak_mb"] * 2**20 / bf16
        met = "yes" if ratio <= PEAK_TARGET else "no"
        lines.append(
            f"| {stage} | {figures['seconds']:.1f} s | {figures['peak_mb']:,.0f} MiB | {ratio:.2f}"
            f" | ≤ {PEAK_TARGET} | {met} |"
        )
    total = sum(figures["seconds"] for figures in results["stages"].values())
    size, planned = results["checkpoint_bytes"], results["planned_checkpoint_bytes"]
    lines += [
        "",
        f"All stages: {total:.0f} s. Checkpoint: {size / 1e9:.3f} GB measured against {planned / 1e9:.3f} GB computed"
        f" before quantizing ({size / planned:.4f}×). Verify's arithmetic: {results['verify_dtype']}, over"
        f" {results['verify_weights_dtype']} weights (the round trip's too)."
        f" vLLM: {results['vllm']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--report-from", type=Path, help="write the report from a --json file of an earlier run")
    arguments = parser.parse_args()
    measure_or_replay(arguments.report_from, arguments.json, run, report, "seed_scale")


if __name__ == "__main__":
    main()
