"""CLI start-up: `hubpub --help` and `hubpub validate` against `python -c "import llmcompressor"`.

Target (issue 2): the cheap commands are at least 20x faster than importing llmcompressor.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
SPECS = [
    str(ROOT / "model_specs" / "smollm2-1.7b-instruct.yaml"),
    str(ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"),
]
TARGET = 20.0


def median_seconds(command: list[str], runs: int) -> float:
    subprocess.run(command, check=True, capture_output=True)  # warm the file cache
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    baseline = median_seconds([sys.executable, "-c", "import llmcompressor"], runs=3)
    rows = [
        ("hubpub --help", median_seconds([HUBPUB, "--help"], runs=7)),
        ("hubpub validate (both model_specs)", median_seconds([HUBPUB, "validate", *SPECS], runs=7)),
    ]
    lines = [
        "## CLI start-up (bench/cli_startup.py)",
        "",
        f'Baseline: `python -c "import llmcompressor"`, median of 3: **{baseline:.2f} s**.'
        f" Target: ≥ {TARGET:.0f}× faster.",
        "",
        "| command | median wall time | speed-up vs baseline | target met |",
        "|---|---|---|---|",
    ]
    for label, seconds in rows:
        ratio = baseline / seconds
        lines.append(f"| `{label}` | {seconds:.3f} s | {ratio:.1f}× | {'yes' if ratio >= TARGET else 'no'} |")
        print(f"{label}: {seconds:.3f} s ({ratio:.1f}x faster than import llmcompressor, {baseline:.2f} s)")
    write_section("cli_startup", "\n".join(lines))


if __name__ == "__main__":
    main()
