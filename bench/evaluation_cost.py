"""Evaluation time per variant, and how many model evaluations a family of two variants costs.

Target (issue 6): the base is evaluated once per family, so two variants cost 3 evaluations, not 4.
Runs the demo family from a fresh work folder (`.hubpub/bench-evaluation`), on this machine's CPU.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from hubpub import api

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
WORKDIR = ROOT / ".hubpub" / "bench-evaluation"


def main() -> None:
    shutil.rmtree(WORKDIR, ignore_errors=True)
    started = time.perf_counter()
    outcomes = api.evaluate([SPEC], workdir=WORKDIR)
    total = time.perf_counter() - started
    evaluations = sum(1 + (not outcome.stages["evaluate"].metrics["base_cached"]) for outcome in outcomes)
    spec_limit = outcomes[0].stages["evaluate"].metrics["settings"]["limit"]
    lines = [
        "## Evaluation cost (bench/evaluation_cost.py)",
        "",
        f"The demo family ({len(outcomes)} variants) from a fresh work folder: lm-eval on `demo_capitals` and"
        f" `demo_wikitext`, first {spec_limit} examples each, float32 on the CPU. The evaluate stage's wall time"
        " includes the base's evaluation only where the base was not cached yet.",
        "",
        "| variant | evaluate stage | base evaluated in this stage |",
        "|---|---|---|",
    ]
    for outcome in outcomes:
        metrics = outcome.stages["evaluate"].metrics
        base = "no (cached)" if metrics["base_cached"] else "yes"
        lines.append(f"| {outcome.variant} | {outcome.stages['evaluate'].seconds:.1f} s | {base} |")
    lines += [
        "",
        f"Model evaluations for {len(outcomes)} variants: **{evaluations}** (target: {len(outcomes) + 1},"
        f" not {2 * len(outcomes)}). Whole run, conversion and quantization included: {total:.0f} s.",
    ]
    write_section("evaluation_cost", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
