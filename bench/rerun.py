"""A re-run of a finished release: `hubpub release SPEC --no-push` again on the same work folder.

Every stage is already done and its inputs unchanged, so the re-run should redo nothing: target < 5% of the
first run's wall time. The first run is the demo spec's W4A16 variant from an empty work folder, with all it
checks (vLLM, lm-eval on base and quantized, the card and its snippets); both are measured as a user runs them,
the whole command and its process tree (bench/treemem.py). The cost of a first release against plain scripts
is bench/family_cost.py's.

    python bench/rerun.py [--runs N] [--json FILE] [--report-from FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import measure_or_replay
from treemem import run_measured

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
TARGET = 0.05


def run(runs: int) -> list[dict[str, Any]]:
    samples = []
    for index in range(runs):
        with tempfile.TemporaryDirectory(prefix="hubpub-rerun-") as scratch:
            command = [HUBPUB, "-q", "release", str(SPEC), "--variant", "W4A16", "--no-push", "--workdir", scratch]
            first = run_measured(command)
            again = run_measured(command)
        samples.append({"first": first, "rerun": again})
        print(f"run {index + 1}: first {first}, re-run {again}", flush=True)
    return samples


def report(samples: list[dict[str, Any]]) -> str:
    first = statistics.median(sample["first"]["seconds"] for sample in samples)
    again = statistics.median(sample["rerun"]["seconds"] for sample in samples)
    again_mb = statistics.median(sample["rerun"]["peak_mb"] for sample in samples)
    ratio = again / first
    return "\n".join(
        [
            "## Re-run of a finished release (bench/rerun.py)",
            "",
            "`hubpub release SPEC --variant W4A16 --no-push` on the demo spec from an empty work folder (vLLM,"
            " lm-eval on base and quantized, the card and its snippets run), then the same command again on the"
            f" same work folder, which should redo no stage. Median of {len(samples)} runs; wall time of the whole"
            " command.",
            "",
            "| first run | re-run | re-run's peak memory (tree PSS) | ratio | target | met |",
            "|---|---|---|---|---|---|",
            f"| {first:.1f} s | {again:.2f} s | {again_mb:.0f} MiB | {ratio:.3f} | < {TARGET} | "
            f"{'yes' if ratio < TARGET else 'no'} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--report-from", type=Path, help="write the report from a --json file of an earlier run")
    arguments = parser.parse_args()
    measure_or_replay(arguments.report_from, arguments.json, lambda: run(arguments.runs), report, "rerun")


if __name__ == "__main__":
    main()
