"""`hubpub release --no-push` of one demo variant against a plain script doing the same work.

Also measures a re-run of the finished release, which should redo no stage.
Targets (issue 3): hubpub ≤ 1.15× the plain script in wall time and in peak RSS; re-run < 5%.
Peak RSS is the largest resident set of the command or any process it started.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
RUNS = 2
# Work a release does that the plain baseline does not: the real vLLM load, lm-eval on base and quantized,
# and the card with its snippets run. The first wall-time row leaves these stages out.
EXTRA_STAGES = ("vllm", "evaluate", "card")
SAME_WORK_STAGES = ("resolve", "preflight", "quantize", "verify")

_MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
completed = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - started
if completed.returncode:
    sys.exit(completed.stderr[-3000:])
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def measure(command: list[str]) -> dict[str, float]:
    completed = subprocess.run([sys.executable, "-c", _MEASURE, *command], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(completed.stdout)
    return result


def hubpub_release(workdir: Path) -> list[str]:
    return [HUBPUB, "-q", "release", str(SPEC), "--variant", "W4A16", "--no-push", "--workdir", str(workdir)]


def _row(label: str, baseline: str, measured: str, ratio: float, target: str, met: bool | None) -> str:
    verdict = "–" if met is None else "yes" if met else "no"
    return f"| {label} | {baseline} | {measured} | {ratio:.3f} | {target} | {verdict} |"


def main() -> None:
    plain, cold, warm = [], [], []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(RUNS):
            plain.append(measure([sys.executable, str(ROOT / "bench" / "plain_release.py")]))
            workdir = Path(scratch) / f"work{index}"
            cold.append(measure(hubpub_release(workdir)))
            manifest = json.loads(next(workdir.glob("releases/*/staged/hubpub-manifest.json")).read_text())
            cold[-1]["extra_seconds"] = sum(manifest["stages"][stage]["seconds"] for stage in EXTRA_STAGES)
            same_work = [stage for name, stage in manifest["stages"].items() if name in SAME_WORK_STAGES]
            cold[-1]["same_work_peak_rss_mb"] = max(
                max(stage["peak_rss_mb"] or 0 for stage in same_work),
                manifest["stages"]["verify"]["metrics"]["child_peak_rss_mb"],
            )
            warm.append(measure(hubpub_release(workdir)))
            shutil.rmtree(workdir)
            print(f"run {index + 1}: plain {plain[-1]}, hubpub {cold[-1]}, re-run {warm[-1]}", flush=True)

    def median(samples: list[dict[str, float]], key: str) -> float:
        return statistics.median(sample[key] for sample in samples)

    plain_s, cold_s, warm_s = (median(samples, "seconds") for samples in (plain, cold, warm))
    plain_mb, cold_mb = median(plain, "peak_rss_mb"), median(cold, "peak_rss_mb")
    same_mb = median(cold, "same_work_peak_rss_mb")
    extra_s = median(cold, "extra_seconds")
    time_ratio, rss_ratio, rerun_ratio = cold_s / plain_s, cold_mb / plain_mb, warm_s / cold_s
    same_work_ratio = (cold_s - extra_s) / plain_s
    lines = [
        "## Release overhead (bench/release_overhead.py)",
        "",
        "One demo variant (SmolLM2-135M-Instruct from GGUF, W4A16, group size 64, RTN) from a cold work folder:"
        " convert, quantize, save, reload, generate, perplexity of base and quantized. Baseline:"
        f" `bench/plain_release.py`, the same work as a plain script. Median of {RUNS} runs each. A release"
        f" also loads the checkpoint in real vLLM, evaluates base and quantized with lm-eval and renders its"
        f" card, running the card's snippets ({extra_s:.1f} s here): work the baseline does not do, which the"
        " first row leaves out.",
        "",
        "| measurement | plain script | hubpub | ratio | target | met |",
        "|---|---|---|---|---|---|",
        _row(
            "wall time, the baseline's work (hubpub less its vllm, evaluate and card stages)",
            f"{plain_s:.1f} s",
            f"{cold_s - extra_s:.1f} s",
            same_work_ratio,
            "≤ 1.15",
            same_work_ratio <= 1.15,
        ),
        _row(
            "wall time, whole release (with vLLM, evaluation, the card and its snippets run)",
            f"{plain_s:.1f} s",
            f"{cold_s:.1f} s",
            time_ratio,
            "–",
            None,
        ),
        _row(
            "peak RSS, the baseline's work (largest hubpub process during resolve … verify)",
            f"{plain_mb:.0f} MiB",
            f"{same_mb:.0f} MiB",
            same_mb / plain_mb,
            "≤ 1.15",
            same_mb / plain_mb <= 1.15,
        ),
        _row(
            "peak RSS, whole release (lm-eval runs in the hubpub process)",
            f"{plain_mb:.0f} MiB",
            f"{cold_mb:.0f} MiB",
            rss_ratio,
            "–",
            None,
        ),
        _row(
            "re-run of the finished release",
            "–",
            f"{warm_s:.2f} s",
            rerun_ratio,
            "< 0.05 of the first run",
            rerun_ratio < 0.05,
        ),
    ]
    write_section("release_overhead", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
