"""The resource plan against measurement: per stage, the plan's host-RAM estimate and the measured peak.

Two models on this CPU: the demo family (SmolLM2-135M-Instruct from its GGUF, both variants, evaluation
included) and a randomly initialised model of SmolLM2-1.7B-Instruct's shape (W4A16 RTN, no evaluation).
Each is released from an empty work folder and published to an embedded Hub in a temporary folder, as a
user runs it: `hubpub release SPEC --hub local --hub-dir H --workdir W`. While it runs, the memory of
hubpub's whole process tree (the CLI, its fork server, every child, the vLLM process; PSS, so pages the
fork server's children share with it count once) is sampled every 50 ms and charged to the stage that
is running, told apart by the stage markers hubpub prints under GitHub Actions. The plan is
`hubpub plan SPEC --json`, computed before the run.

    python bench/resource_plan.py [--only demo|1.7b] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section
from treemem import tree_memory_bytes

ROOT = Path(__file__).resolve().parent.parent
HUBPUB = str(Path(sys.executable).with_name("hubpub"))
DEMO_SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
RANDOM_BASE = ROOT / ".cache" / "bench" / "random-smollm2-1.7b-shape"
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGE_MARK = re.compile(r"^::group::(?P<variant>[^:]+): (?P<stage>\w+)$")


def measure_release(spec: Path, workdir: Path, hub_dir: Path) -> dict[str, dict[str, float]]:
    """Peak tree RSS (MiB) and seconds per (variant, stage) of one `hubpub release` run."""
    environment = {
        **os.environ,
        "GITHUB_ACTIONS": "true",
        "HUBPUB_VLLM_PYTHON": str(ROOT / ".venv-vllm" / "bin" / "python"),
    }
    environment.pop("GITHUB_STEP_SUMMARY", None)
    command = [HUBPUB, "release", str(spec), "--workdir", str(workdir), "--hub", "local", "--hub-dir", str(hub_dir)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=workdir.parent
    )
    current: list[str | None] = [None]
    peaks: dict[str, dict[str, float]] = {}
    log: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            mark = STAGE_MARK.match(line.strip())
            if mark:
                key = f"{mark['variant']}:{mark['stage']}"
                peaks.setdefault(key, {"peak_mb": 0.0, "started": time.perf_counter(), "seconds": 0.0})
                peaks[key]["peak_mb"] = tree_memory_bytes(process.pid) / 2**20
                current[0] = key
            elif line.startswith("::endgroup::") and current[0] is not None:
                entry = peaks[current[0]]
                entry["seconds"] = time.perf_counter() - entry["started"]
                current[0] = None

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while process.poll() is None:
        stage = current[0]
        if stage is not None:
            entry = peaks[stage]
            entry["peak_mb"] = max(entry["peak_mb"], tree_memory_bytes(process.pid) / 2**20)
        time.sleep(0.05)
    reader.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{''.join(log[-40:])}")
    return {
        key: {"peak_mb": round(value["peak_mb"]), "seconds": round(value["seconds"], 1)} for key, value in peaks.items()
    }


def replan(earlier: Path) -> None:
    results = json.loads(earlier.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="hubpub-resource-bench-") as scratch:
        folder = Path(scratch)
        specs = {"demo": DEMO_SPEC, "1.7b": random_model_spec(folder)}
        for name in ("demo", "1.7b"):
            if name in results:
                results[name]["plan"] = planned(specs[name])
        plans_70b = llama_70b_plans(folder)
    write_section(
        "resource_plan",
        report({name: results[name] for name in specs if name in results}) + "\n\n" + report_70b(plans_70b),
    )


def vllm_snippets(workdir: Path) -> dict[str, bool]:
    """Per variant, whether the card stage ran the vLLM snippet (it does only when vLLM loaded the checkpoint)."""
    ran = {}
    for manifest in workdir.glob("releases/*/staged/hubpub-manifest.json"):
        facts = json.loads(manifest.read_text(encoding="utf-8"))
        ran[facts["variant"]] = bool((facts["stages"]["card"]["metrics"].get("vllm_snippet") or {}).get("ran"))
    return ran


LLAMA_3_1_70B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}
RUNNERS_70B = [(1, 24, 64, 100), (1, 80, 256, 1000), (2, 80, 256, 1000), (4, 48, 256, 1000), (8, 24, 256, 1000)]


def llama_70b_plans(folder: Path) -> list[dict[str, Any]]:
    """`hubpub plan` of a W4A16 (group 128) release of a Llama-3.1-70B-shaped config.json on several runners."""
    base = folder / "llama-70b"
    base.mkdir()
    (base / "config.json").write_text(json.dumps(LLAMA_3_1_70B), encoding="utf-8")
    plans = []
    for gpus, gpu_gb, ram_gb, disk_gb in RUNNERS_70B:
        spec = folder / f"llama-70b-{gpus}x{gpu_gb}.yaml"
        spec.write_text(
            "base_model: meta-llama/Llama-3.1-70B-Instruct\nsource: {path: llama-70b}\n"
            "repo_id: bench/Llama-3.1-70B-Instruct-W4A16\nscheme: W4A16\n"
            f"runner: {{gpus: {gpus}, gpu_memory_gb: {gpu_gb}, ram_gb: {ram_gb}, disk_gb: {disk_gb}}}\n",
            encoding="utf-8",
        )
        plans.append({"runner": f"{gpus} × {gpu_gb} GB GPU, {ram_gb} GB RAM, {disk_gb} GB disk", "plan": planned(spec)})
    return plans


def report_70b(plans: list[dict[str, Any]]) -> str:
    first = plans[0]["plan"][0]["resources"]
    lines = [
        "### Llama-3.1-70B shape, W4A16 group 128: the plan only (no GPU was lent to measure it)",
        "",
        f"{first['parameters'] / 1e9:.2f} B parameters; bf16 base {first['base_bytes'] / 1e9:.1f} GB; checkpoint"
        f" {first['checkpoint_bytes'] / 1e9:.1f} GB; decompressed for transformers"
        f" {first['decompressed_bytes'] / 1e9:.1f} GB. Each cell: the GPUs the stage is placed on, and its host RAM.",
        "",
        "| runner | quantize | verify | vllm | card | publish | refused stages |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in plans:
        stages = {stage["stage"]: stage for stage in entry["plan"][0]["resources"]["stages"]}
        cells = []
        for name in ("quantize", "verify", "vllm", "card", "publish"):
            stage = stages[name]
            budgets = stage["placement"]["gpu_budgets"]
            where = f"{len(budgets)} GPU" + ("s" if len(budgets) != 1 else "") if budgets else "–"
            if name == "vllm" and budgets:
                where += f" (tp {stage['placement']['tensor_parallel_size']})"
            cells.append(f"{where}, {stage['ram_bytes'] / 1e9:.0f} GB RAM")
        refused = ", ".join(name for name, stage in stages.items() if stage["refusal"]) or "none"
        lines.append(f"| {entry['runner']} | " + " | ".join(cells) + f" | {refused} |")
    return "\n".join(lines)


def planned(spec: Path) -> dict[str, Any]:
    completed = subprocess.run([HUBPUB, "plan", str(spec), "--json"], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def random_model_spec(folder: Path) -> Path:
    if not (RANDOM_BASE / "model.safetensors").is_file():
        from gpu_quantize import build_random_model

        tokenizer = next((ROOT / ".hubpub" / "work" / "cache" / "gguf").glob("*/"), None)
        if tokenizer is None:
            sys.exit("no SmolLM2 tokenizer folder: run `make demo` first")
        RANDOM_BASE.mkdir(parents=True, exist_ok=True)
        build_random_model(RANDOM_BASE, tokenizer)
    spec = folder / "random-1.7b.yaml"
    spec.write_text(
        "\n".join(
            [
                "base_model: bench/random-smollm2-1.7b-shape",
                f"source: {{path: {RANDOM_BASE}}}",
                "repo_id: bench/random-smollm2-1.7b-shape-W4A16",
                "scheme: W4A16",
                "license: apache-2.0",
                "version: 0.1.0",
                "verify:",
                "  prompts:",
                "    - What is the capital of Germany?",
                "  max_new_tokens: 8",
                "  max_perplexity_ratio: 100",
                "  vllm: optional",
                "",
            ]
        ),
        encoding="utf-8",
    )
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("demo", "1.7b"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--report-from", type=Path, help="a --json file of an earlier run: plan again, compare with its measurements"
    )
    args = parser.parse_args()
    if args.report_from:
        replan(args.report_from)
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hubpub-resource-bench-") as scratch:
        folder = Path(scratch)
        models = {"demo": DEMO_SPEC, "1.7b": None}
        for name, spec in models.items():
            if args.only and args.only != name:
                continue
            spec = spec or random_model_spec(folder)
            try:
                plan = planned(spec)
            except subprocess.CalledProcessError:
                plan = None
            work = folder / f"work-{name}"
            measured = measure_release(spec, work, folder / f"hub-{name}")
            results[name] = {"measured": measured, "plan": plan, "vllm_snippet_ran": vllm_snippets(work)}
            print(json.dumps({name: measured}, indent=1), flush=True)
        plans_70b = llama_70b_plans(folder)
    if args.json:
        args.json.write_text(json.dumps({**results, "llama-70b": plans_70b}, indent=1), encoding="utf-8")
    write_section("resource_plan", report(results) + "\n\n" + report_70b(plans_70b))


def report(results: dict[str, Any]) -> str:
    lines = [
        "## Resource plan against measurement (bench/resource_plan.py)",
        "",
        "Host RAM: the plan's estimate per stage and the measured peak of hubpub's whole process tree (PSS summed"
        " over the CLI, the fork server and every child) during that stage, in a fresh `hubpub release` published to"
        " a local Hub with its round trip.",
        "",
        "The plan's constants (hubpub/resources/plan.py: the CLI, the fork server, llm-compressor's and lm-eval's"
        " working memory, vLLM's engine) were fitted on these two models; what the table shows is that one set of"
        " constants, scaled by the model's shape, holds from 135 M to 1.7 B parameters. Seconds are wall time on a"
        " machine shared with other work, for orientation only.",
        "",
        "The card stage runs its vLLM snippet only when vLLM loaded the checkpoint (not W4A16 on this AVX2 CPU);"
        " its estimate is then the Transformers snippet's. `hubpub plan` reports both and checks the larger.",
        "",
        "| model | variant | stage | planned | measured | planned ÷ measured | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        estimates = stage_estimates(result["plan"], result["vllm_snippet_ran"])
        for key, figures in result["measured"].items():
            variant, stage = key.split(":")
            estimate = estimates.get((variant, stage))
            if estimate is None:
                continue  # a stage the spec skips (no evaluation)
            ratio = f"{estimate / figures['peak_mb']:.2f}" if figures["peak_mb"] else "–"
            shown = f"{estimate:,.0f} MiB"
            measured = f"{figures['peak_mb']:,} MiB"
            lines.append(f"| {name} | {variant} | {stage} | {shown} | {measured} | {ratio} | {figures['seconds']} |")
    return "\n".join(lines)


def stage_estimates(plan: Any, vllm_snippet_ran: dict[str, bool]) -> dict[tuple[str, str], float]:
    """(variant, stage) -> planned host RAM in MiB, from `hubpub plan --json`. The card stage runs its vLLM snippet
    only when vLLM loaded the checkpoint: when it did not, the estimate compared is the Transformers snippet's."""
    estimates: dict[tuple[str, str], float] = {}
    for entry in plan or []:
        for stage in (entry.get("resources") or {}).get("stages", []):
            planned_bytes = stage["ram_bytes"]
            parts = stage.get("ram_parts") or {}
            if stage["stage"] == "card" and not vllm_snippet_ran.get(entry["variant"]) and parts:
                planned_bytes = parts["transformers snippet"]
            estimates[(entry["variant"], stage["stage"])] = planned_bytes / 2**20
    return estimates


if __name__ == "__main__":
    main()
