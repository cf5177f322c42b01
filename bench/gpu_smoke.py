"""One short run that proves hubpub's GPU path on a GPU machine with no network (at most 8 minutes there).

On the machine, from the repository root, with the device kit installed (`make device-kit` here, then carry
`.device-kit` along):

    bash .device-kit/install.sh /tmp/kit && /tmp/kit/bin/python bench/gpu_smoke.py

`--dry-run` runs the same steps on this CPU, with tiny shapes, CPU placements and the CUDA probe double of
tests/cuda_probe in place of the GPU, so the script is proven before it meets one. Each step runs in its own
interpreter under its own time budget and writes `<step>.json` into the output folder ($OUT when set, else
bench/out/gpu_smoke/): `ok`, `error`, `seconds`, `budget_s` and its `measurements`, so a crash or a hang in one
step hides none of the others. Nothing is downloaded: the models have random weights of a real model's shape and
the SmolLM2 tokenizer from the kit (or converted from the demo GGUF here).

Steps:
  env             GPU, memory, driver (nvidia-smi), torch and CUDA versions, which kit packages import
  fork            hubpub's real fork servers (hubpub.warm): their children use CUDA, none is a poisoned fork
  release-w4a16   `hubpub release --no-push` of a SmolLM2-1.7B-shaped model, W4A16 GPTQ, verify and evaluate on
                  the GPU (`runner` declares it; verify.vllm off: no vLLM there)
  release-w8a8    the same as W8A8, smoothquant+gptq where the installed hubpub takes it, else gptq
  peaks           each stage's measured peak per device against `hubpub plan --json`
  placement       the W4A16 checkpoint loaded under a GPU budget between its packed and decompressed size: where
                  its modules land and whether the first forward fits
  parallelize     lm-eval through hubpub's evaluate child over a model spread across GPU 0 and host RAM by its map
  release-8b      (--llama-8b, or `--only env release-8b` as a run of its own: its budget alone is 7 minutes)
                  a W4A16 GPTQ release of a Llama-3.1-8B-shaped model
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KIT_TOKENIZER = ROOT / ".device-kit" / "smollm2-tokenizer"
DEMO_GGUF = ROOT / ".cache" / "demo-models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
CUDA_PROBE = ROOT / "tests" / "cuda_probe"
DEMO = ROOT / "model_specs" / "demo"
DEFAULT_OUT = ROOT / "bench" / "out" / "gpu_smoke"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "hubpub-gpu-smoke"
KIT_PACKAGES = ("hubpub", "llmcompressor", "compressed_tensors", "lm_eval", "pydantic", "datasets", "gguf", "nh3")

# Each shape has an untied head, which count_upwards needs (SmolLM2-1.7B ties it: 100M parameters more here).
LLAMA = {"architectures": ["LlamaForCausalLM"], "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2}
LLAMA_3_1_8B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000,
    "tie_word_embeddings": False,
    "vocab_size": 128256,
}
TINY = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "rope_theta": 10000,
    "tie_word_embeddings": False,
    "vocab_size": 49152,
}


STRIDE = 1000
"""Greedy generation of the random models goes from token i to token i+STRIDE (past the byte tokens)."""


class SmokeFailure(Exception):
    """A step ran and found what it checks false; the message says what."""


@dataclass(frozen=True)
class Options:
    dry_run: bool
    work: Path

    @property
    def shape(self) -> dict[str, Any]:
        if self.dry_run:
            return TINY
        from gpu_quantize import SMOLLM2_1_7B

        return {**SMOLLM2_1_7B, "tie_word_embeddings": False}


# ---------------------------------------------------------------------------------------------- helpers


def step_environment(options: Options) -> dict[str, str]:
    """The environment of what a step starts: the tree's hubpub first, offline, nothing from the user's caches."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    env.setdefault("HF_HOME", str(options.work / "hf-home"))
    env.pop("HUBPUB_CACHE_DIR", None)
    return env


def tokenizer_folder(options: Options) -> Path:
    """The SmolLM2 tokenizer: the kit's, or converted from the demo GGUF into the work folder."""
    if KIT_TOKENIZER.is_dir():
        return KIT_TOKENIZER
    converted = options.work / "smollm2-tokenizer"
    if not (converted / "tokenizer.json").is_file():
        if not DEMO_GGUF.is_file():
            raise SmokeFailure(f"no tokenizer: neither {KIT_TOKENIZER} (make device-kit) nor {DEMO_GGUF}")
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(DEMO_GGUF.parent, gguf_file=DEMO_GGUF.name).save_pretrained(converted)
    return converted


def random_model(options: Options, name: str, shape: dict[str, Any]) -> Path:
    """A bfloat16 Llama of `shape` with random weights and SmolLM2's tokenizer, built once per work folder
    (on the GPU when there is one: initialising billions of weights on the CPU takes minutes)."""
    folder = options.work / name
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    torch.manual_seed(0)
    config = LlamaConfig(**{**LLAMA, **shape})
    device = "cpu" if options.dry_run else "cuda"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    count_upwards(model)
    model.save_pretrained(partial)
    del model
    if not options.dry_run:
        torch.cuda.empty_cache()  # the release that follows runs in other processes
    for item in tokenizer_folder(options).iterdir():
        shutil.copyfile(item, partial / item.name)
    partial.rename(folder)
    return folder


def count_upwards(model: Any) -> None:
    """Make greedy generation of random weights count upwards through the vocabulary, so the verify stage's
    degeneracy check (one token repeated) sees varied text: large embeddings carry each token through the random
    layers, and the untied head scores token i+STRIDE by token i's embedding, with a margin small enough to keep the
    perplexity finite."""
    import torch

    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings.normal_(0.0, 50.0)
        unit = embeddings.float() / embeddings.float().norm(dim=1, keepdim=True)
        head = torch.roll(unit, shifts=STRIDE, dims=0) * (8.0 / unit.shape[1] ** 0.5)
        model.get_output_embeddings().weight.copy_(head.to(embeddings.dtype))


def gpu_memory_gb() -> float:
    """The first GPU's memory in GB, from nvidia-smi (a step that forks must not ask CUDA itself)."""
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(listed.stdout.splitlines()[0].strip()) * 2**20 / 1e9


def w8a8_algorithm() -> str:
    """smoothquant+gptq where the installed hubpub's spec takes it (issue 24 section 4), else gptq."""
    from hubpub.schemes import SCHEMES

    return "smoothquant+gptq" if "smoothquant+gptq" in SCHEMES["W8A8"].algorithms else "gptq"


def write_spec(options: Options, name: str, base: Path, scheme: str, algorithm: str, samples: int) -> Path:
    runner = {"gpus": 0} if options.dry_run else {"gpus": 1, "gpu_memory_gb": round(gpu_memory_gb(), 1)}
    spec = {
        "base_model": f"smoke/{base.name}",
        "source": {"path": str(base)},
        "repo_id": f"smoke/{name}",
        "license": "apache-2.0",
        "scheme": scheme,
        "algorithm": algorithm,
        "calibration": {
            "dataset": str(DEMO / "calibration.jsonl"),
            "text_column": "text",
            "num_samples": samples,
            "max_seq_length": 64 if options.dry_run else 256,
        },
        # Random weights: the quality gates are not what is checked here, only that each stage runs. No vLLM
        # on the GPU machines.
        "verify": {
            "prompts": ["What is the capital of France?"],
            "max_new_tokens": 8,
            "max_perplexity_ratio": 100.0,
            "vllm": "off",
        },
        "evaluation": {
            "tasks": ["demo_capitals"],
            "include_path": [str(DEMO / "tasks")],
            "limit": 8,
            "batch_size": 8,
        },
        "runner": runner,
    }
    path = options.work / f"{name}.yaml"
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")  # JSON is YAML
    return path


def hubpub_cli(options: Options, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubpub", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=step_environment(options),
        cwd=ROOT,
    )


def release(options: Options, name: str, base: Path, scheme: str, algorithm: str, budget: float) -> dict[str, Any]:
    """A real `hubpub release --no-push` of one variant; its manifest's stages, devices and peaks."""
    samples = 8 if options.dry_run else 32
    spec = write_spec(options, name, base, scheme, algorithm, samples)
    workdir = options.work / f"{name}-work"
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.monotonic()
    done = hubpub_cli(options, "release", str(spec), "--no-push", "--workdir", str(workdir), "--json", timeout=budget)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SmokeFailure(f"hubpub release exited {done.returncode}:\n{done.stderr[-3000:]}")
    outcome = json.loads(done.stdout)[0]
    manifest = json.loads(Path(outcome["manifest"]).read_text(encoding="utf-8"))
    facts = {
        "spec": str(spec),
        "workdir": str(workdir),
        "manifest": outcome["manifest"],
        "staged_dir": outcome["staged_dir"],
        "scheme": scheme,
        "algorithm": algorithm,
        "recipe_modifiers": sorted(_modifiers(manifest["recipe"])),
        "release_seconds": round(seconds, 1),
        "device": manifest["device"],
        "stages": {
            stage: {
                "status": result["status"],
                "seconds": result["seconds"],
                "peak_rss_mb": result["peak_rss_mb"],
                "peak_gpu_mb": result["peak_gpu_mb"],
                "device": result["metrics"].get("device"),
            }
            for stage, result in manifest["stages"].items()
        },
        "perplexity": manifest["stages"]["verify"]["metrics"].get("perplexity"),
        "generations": [item["output"] for item in manifest["stages"]["verify"]["metrics"].get("generations", [])],
        "evaluation": manifest["stages"].get("evaluate", {}).get("metrics", {}).get("rows"),
    }
    (options.work / f"{name}.release.json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
    gpu_stages = ("quantize", "verify", "evaluate")
    if not options.dry_run:
        off_gpu = [stage for stage in gpu_stages if not facts["stages"][stage]["peak_gpu_mb"]]
        if off_gpu:
            raise SmokeFailure(f"no GPU memory was used by {', '.join(off_gpu)}: {json.dumps(facts['stages'])}")
    return facts


def _modifiers(recipe: Any) -> set[str]:
    """The llm-compressor modifier class names anywhere in a recorded recipe."""
    if isinstance(recipe, dict):
        found = {key for key in recipe if key.endswith("Modifier")}
        return found.union(*(_modifiers(value) for value in recipe.values()))
    if isinstance(recipe, list):
        return set().union(*(_modifiers(value) for value in recipe))
    return set()


def earlier(options: Options, name: str) -> dict[str, Any]:
    path = options.work / f"{name}.release.json"
    if not path.is_file():
        raise SmokeFailure(f"needs the output of step {name}, which did not finish")
    facts: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return facts


# ---------------------------------------------------------------------------------------------- steps


def env(options: Options) -> dict[str, Any]:
    import importlib
    import importlib.metadata
    import platform

    facts: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        facts["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except FileNotFoundError:
        facts["nvidia_smi"] = None
    imported, failed = {}, {}
    for package in KIT_PACKAGES:
        try:
            module = importlib.import_module(package)
            imported[package] = {"file": module.__file__, "version": getattr(module, "__version__", None)}
        except Exception as exc:
            failed[package] = f"{type(exc).__name__}: {exc}"
    facts["imported"], facts["import_failed"] = imported, failed
    import torch

    facts["torch"], facts["torch_cuda"], facts["torch_file"] = torch.__version__, torch.version.cuda, torch.__file__
    facts["transformers"] = importlib.metadata.version("transformers")
    facts["cuda_available"] = torch.cuda.is_available()
    if facts["cuda_available"]:
        properties = torch.cuda.get_device_properties(0)
        facts["gpu"] = {"name": properties.name, "memory_gib": round(properties.total_memory / 2**30, 1)}
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=60)
    facts["pip_check"] = check.stdout.strip().splitlines()[-20:]
    if failed:
        raise SmokeFailure(f"kit packages do not import: {failed}")
    if not options.dry_run and not (facts["cuda_available"] and facts["torch_cuda"]):
        raise SmokeFailure(f"torch {facts['torch']} (CUDA {facts['torch_cuda']}) sees no usable GPU")
    return facts


FORK_CHILD = """\
import json, os, sys
import torch
from hubpub.placement import cuda_problem
facts = {"pid": os.getpid(), "bad_fork": bool(torch.cuda._is_in_bad_fork()),
         "llmcompressor_loaded": "llmcompressor" in sys.modules, "lm_eval_loaded": "lm_eval" in sys.modules,
         "cuda_problem": cuda_problem()}
if facts["cuda_problem"] is None:
    facts["cuda_sum"] = float(torch.ones(1024, device="cuda").sum().item())
    facts["cuda_device"] = torch.cuda.get_device_name(0)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(facts, out)
"""


def fork(options: Options) -> dict[str, Any]:
    """The real servers of hubpub.warm (which import llm-compressor and lm-eval) fork a child of each kind that
    uses CUDA. On a GPU: each child is no bad fork and runs a CUDA kernel, so no process before it had asked CUDA
    the poisoning way. Dry run: under the CUDA probe, no process that forked had asked the CUDA runtime."""
    modules = options.work / "fork-modules"
    modules.mkdir(parents=True, exist_ok=True)
    (modules / "smoke_fork_child.py").write_text(FORK_CHILD, encoding="utf-8")
    records = options.work / "fork-probe"
    shutil.rmtree(records, ignore_errors=True)
    records.mkdir()
    paths = [str(modules), str(ROOT)]
    if options.dry_run:
        paths.insert(0, str(CUDA_PROBE))
        os.environ["HUBPUB_TEST_CUDA_PROBE"] = str(records)
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    from hubpub import warm

    children: dict[str, Any] = {}
    kinds: tuple[warm.Kind, ...] = ("stages", "scripts")
    for kind in kinds:
        result = options.work / f"fork-{kind}.json"
        result.unlink(missing_ok=True)
        child = warm.WarmInterpreter(kind)
        try:
            code = child.run("smoke_fork_child", [str(result)], timeout=240)
            output = child.output()
        finally:
            child.close()
        facts = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else {}
        children[kind] = {"exit_code": code, **facts, "output_tail": output[-1500:]}
    problems = [
        f"the {kind} child: {facts}" for kind, facts in children.items() if facts["exit_code"] != 0 or facts["bad_fork"]
    ]
    if not children["stages"].get("llmcompressor_loaded"):
        problems.append("the stages child did not come from the server that imported llm-compressor")
    measured: dict[str, Any] = {"children": children}
    if options.dry_run:
        entries = [json.loads(line) for path in records.glob("*.jsonl") for line in path.read_text().splitlines()]
        forks = [entry for entry in entries if entry["kind"] == "fork"]
        servers = {entry["ppid"] for entry in forks}
        runtime = [entry for entry in entries if entry["kind"] == "runtime" and entry["pid"] in servers]
        measured["probe"] = {
            "forks": len(forks),
            "poisoned_forks": [entry for entry in forks if entry["parent_poisoned"]],
            "servers_asking_the_cuda_runtime": runtime,
            "servers_asking_nvml": sorted({entry["pid"] for entry in entries if entry["kind"] == "nvml"} & servers),
        }
        if not forks or measured["probe"]["poisoned_forks"] or runtime:
            problems.append(f"a process asked CUDA's runtime and then forked: {measured['probe']}")
    else:
        problems += [
            f"the {kind} child cannot use CUDA: {facts}"
            for kind, facts in children.items()
            if not facts.get("cuda_sum")
        ]
    if problems:
        raise SmokeFailure("; ".join(problems))
    return measured


def release_w4a16(options: Options) -> dict[str, Any]:
    base = random_model(options, "base-smollm2-1.7b" if not options.dry_run else "base-tiny", options.shape)
    return release(options, "release-w4a16", base, "W4A16", "gptq", STEPS["release-w4a16"].budget(options) - 10)


def release_w8a8(options: Options) -> dict[str, Any]:
    base = random_model(options, "base-smollm2-1.7b" if not options.dry_run else "base-tiny", options.shape)
    algorithm = w8a8_algorithm()
    facts = release(options, "release-w8a8", base, "W8A8", algorithm, STEPS["release-w8a8"].budget(options) - 10)
    if algorithm.startswith("smoothquant") and "SmoothQuantModifier" not in facts["recipe_modifiers"]:
        raise SmokeFailure(f"{algorithm} was asked for, the recorded recipe has {facts['recipe_modifiers']}")
    return facts


def release_8b(options: Options) -> dict[str, Any]:
    base = random_model(
        options,
        "base-llama-3.1-8b" if not options.dry_run else "base-tiny",
        LLAMA_3_1_8B if not options.dry_run else TINY,
    )
    return release(options, "release-8b", base, "W4A16", "gptq", STEPS["release-8b"].budget(options) - 10)


def peaks(options: Options) -> dict[str, Any]:
    """Each stage's measured peaks (the manifest) against `hubpub plan --json` on the same spec and runner.
    A GPU peak above the plan's GPU memory for that stage fails the step; host RAM is recorded beside it."""
    compared: dict[str, Any] = {}
    over: list[str] = []
    for name in ("release-w4a16", "release-w8a8"):
        try:
            facts = earlier(options, name)
        except SmokeFailure as missing:
            compared[name] = {"skipped": str(missing)}
            continue
        planned = hubpub_cli(options, "plan", facts["spec"], "--json", timeout=120)
        if planned.returncode != 0:
            raise SmokeFailure(f"hubpub plan exited {planned.returncode}: {planned.stderr[-2000:]}")
        plan = json.loads(planned.stdout)[0]["resources"]
        rows = {}
        for stage in plan["stages"]:
            measured = facts["stages"].get(stage["stage"])
            if measured is None:
                continue
            gpu = measured["peak_gpu_mb"] or {}
            budgets = stage["placement"]["gpu_budgets"]
            row = {
                "planned_gpu_mb": round(stage["gpu_bytes"] / 2**20),
                "planned_budgets_mb": {device: round(value / 2**20) for device, value in budgets.items()},
                "measured_gpu_mb": gpu,
                "planned_ram_mb": round(stage["ram_bytes"] / 2**20),
                "measured_rss_mb": measured["peak_rss_mb"],
                "rss_within_plan": (measured["peak_rss_mb"] or 0) <= stage["ram_bytes"] / 2**20,
            }
            for device, value in gpu.items():
                limit = budgets.get(device, 0) / 2**20 or stage["gpu_bytes"] / 2**20
                if value > limit:
                    over.append(f"{name} {stage['stage']} peaked at {value:.0f} MiB on GPU {device}, plan {limit:.0f}")
            rows[stage["stage"]] = row
        compared[name] = {
            "decompressed_bytes": plan["decompressed_bytes"],
            "checkpoint_bytes": plan["checkpoint_bytes"],
            "stages": rows,
        }
    if not any("stages" in value for value in compared.values()):
        raise SmokeFailure("no release finished, so there is nothing to compare")
    if over:
        raise SmokeFailure("; ".join(over))
    return compared


def decompressed_load(
    checkpoint: Path, device: int | str, budget: int, spill: tuple[int | str, int], offload: Path
) -> dict[str, Any]:
    """`from_pretrained` arguments from hubpub's placement by decompressed size (hubpub.device_map, as verify,
    evaluate and the round trip load): `device` filled first up to `budget`, the rest spilled."""
    from hubpub.device_map import model_sizes

    sizes = model_sizes(checkpoint)
    device_map = sizes.device_map({device: budget}, spill)
    return sizes.load_kwargs(device_map, offload_folder=offload if spill[0] == "disk" else None)


def placement(options: Options) -> dict[str, Any]:
    """The W4A16 checkpoint of release-w4a16 loaded under a first-device budget halfway between its packed and
    decompressed size: where its modules land, and whether its first forward fits that budget."""
    facts = earlier(options, "release-w4a16")
    checkpoint = Path(facts["staged_dir"])
    plan = hubpub_cli(options, "plan", facts["spec"], "--json", timeout=120)
    if plan.returncode != 0:
        raise SmokeFailure(f"hubpub plan exited {plan.returncode}: {plan.stderr[-2000:]}")
    sizes = json.loads(plan.stdout)[0]["resources"]
    packed = sum(path.stat().st_size for path in checkpoint.glob("*.safetensors"))
    decompressed = int(sizes["decompressed_bytes"])
    budget = (packed + decompressed) // 2
    import torch
    from transformers import AutoModelForCausalLM

    device: int | str = "cpu" if options.dry_run else 0
    spill: tuple[int | str, int] = ("disk", 64 * 2**30) if options.dry_run else ("cpu", 64 * 2**30)
    source = "hubpub.device_map (decompressed sizes)"
    measured: dict[str, Any] = {
        "packed_bytes": packed,
        "decompressed_bytes": decompressed,
        "budget_bytes": budget,
        "device_map_from": source,
    }
    load = decompressed_load(checkpoint, device, budget, spill, options.work / "offload")
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype="auto", **load)
    landed: dict[str, int] = {}
    for where in load["device_map"].values():
        landed[str(where)] = landed.get(str(where), 0) + 1
    measured["modules_per_device"] = landed
    measured["parameters_per_device"] = dict(Counter(str(parameter.device) for parameter in model.parameters()))
    if not options.dry_run:
        measured["allocated_after_load"] = torch.cuda.memory_allocated(0)
    first = model.get_input_embeddings().weight.device
    try:
        with torch.no_grad():
            model(input_ids=torch.ones(1, 16, dtype=torch.long, device=first))
        measured["first_forward"] = "ok"
    except torch.OutOfMemoryError as exc:
        measured["first_forward"] = f"out of memory: {str(exc)[:300]}"
    if measured["first_forward"] != "ok":
        raise SmokeFailure(f"the first forward did not fit: {measured}")
    if not options.dry_run:
        measured["allocated_after_first_forward"] = torch.cuda.memory_allocated(0)
        measured["peak_allocated"] = torch.cuda.max_memory_allocated(0)
        if measured["peak_allocated"] > budget:
            raise SmokeFailure(
                f"GPU 0 held {measured['peak_allocated']} bytes at the first forward, over its budget of {budget}:"
                f" the checkpoint decompressed where it was placed by its packed size ({source}): {measured}"
            )
    return measured


def parallelize(options: Options) -> dict[str, Any]:
    """lm-eval through hubpub's evaluate child over a model spread across GPU 0 and host RAM. hubpub does not use
    lm-eval's own `parallelize` (it sizes a compressed checkpoint by its packed tensors): it hands lm-eval the model
    loaded with its decompressed-size device map. Here GPU 0 may take all of the decompressed model but one byte, so
    the map must spill to the CPU. Dry run: the same child on the CPU placement, and the map it would load with."""
    from hubpub.device_map import model_sizes
    from hubpub.placement import CPU, Placement
    from hubpub.stages._child import run_child
    from hubpub.stages._evaluate_child import gpu_load_kwargs

    facts = earlier(options, "release-w4a16")
    os.environ.update(step_environment(options))

    loaded = model_sizes(Path(facts["staged_dir"])).loaded_bytes
    # All of the model but one byte: the map must spill, keeping room on GPU 0 for the largest spilled module.
    budget = loaded - 1
    spread = Placement(gpu_budgets={0: budget}, cpu_offload_bytes=loaded)
    arguments = gpu_load_kwargs(spread, facts["staged_dir"], device_count=1)
    devices = sorted({str(where) for where in arguments["device_map"].values()})
    if devices != ["0", "cpu"]:
        raise SmokeFailure(f"the evaluate child's device map does not spread over GPU 0 and the CPU: {devices}")
    used = CPU if options.dry_run else spread
    folder = options.work / "parallelize"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    request = {
        "models": {"quantized": facts["staged_dir"]},
        "tasks": ["demo_capitals"],
        "num_fewshot": 0,
        "limit": 8,
        "batch_size": 8,
        "seed": 0,
        "bootstrap_iters": 0,
        "include_path": [str(DEMO / "tasks")],
        "placement": used.as_request(),
    }
    result = run_child(
        "hubpub.stages._evaluate_child",
        request,
        folder,
        "evaluate",
        what="lm-eval",
        timeout=STEPS["parallelize"].budget(options) - 20,
    )
    scores = result["results"]["quantized"]["results"]
    return {
        "devices_in_map": devices,
        "gpu_budget_bytes": budget,
        "placement": used.as_request(),
        "scores": scores,
        "peak_gpu_mb": result.get("peak_gpu_mb"),
    }


@dataclass(frozen=True)
class Step:
    run: Callable[[Options], dict[str, Any]]
    gpu_s: int
    """Its budget on the GPU machine; all of them together stay under 8 minutes."""
    dry_s: int
    """Its budget in a dry run on a small shared CPU."""
    optional: bool = False

    def budget(self, options: Options) -> int:
        return self.dry_s if options.dry_run else self.gpu_s


STEPS = {
    "env": Step(env, 20, 120),
    "fork": Step(fork, 45, 240),
    "release-w4a16": Step(release_w4a16, 150, 420),
    "release-w8a8": Step(release_w8a8, 130, 420),
    "peaks": Step(peaks, 25, 120),
    "placement": Step(placement, 40, 120),
    "parallelize": Step(parallelize, 40, 240),
    "release-8b": Step(release_8b, 420, 420, optional=True),
}


# ---------------------------------------------------------------------------------------------- driver


def run_step(name: str, options: Options, result_path: Path) -> None:
    """In the step's own interpreter: run it and write its measurements or its failure."""
    outcome: dict[str, Any]
    try:
        outcome = {"ok": True, "error": None, "measurements": STEPS[name].run(options)}
    except SmokeFailure as failure:
        outcome = {"ok": False, "error": str(failure)}
    except BaseException as exc:
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    result_path.write_text(json.dumps(outcome, indent=2, default=str), encoding="utf-8")


def drive(names: list[str], options: Options, out: Path) -> list[dict[str, Any]]:
    """Each step in its own interpreter and process group, killed with everything it started when it outlives
    its budget; its JSON is written whatever happened."""
    out.mkdir(parents=True, exist_ok=True)
    options.work.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in names:
        budget = STEPS[name].budget(options)
        result_path = options.work / f"{name}.result.json"
        result_path.unlink(missing_ok=True)
        command = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--work", str(options.work)]
        if options.dry_run:
            command.append("--dry-run")
        log_path = options.work / f"{name}.log"
        started = time.monotonic()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=step_environment(options),
                cwd=ROOT,
                start_new_session=True,
            )
            try:
                process.wait(timeout=budget)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if timed_out:
            found: dict[str, Any] = {"ok": False, "error": f"timed out after its budget of {budget} s"}
        elif result_path.is_file():
            found = json.loads(result_path.read_text(encoding="utf-8"))
        else:
            found = {"ok": False, "error": f"its interpreter exited {process.returncode} without a result"}
        report = {
            "step": name,
            "ok": found["ok"],
            "error": found["error"],
            "seconds": round(time.monotonic() - started, 1),
            "budget_s": budget,
            "dry_run": options.dry_run,
            "measurements": found.get("measurements", {}),
            "traceback": found.get("traceback"),
            "log_tail": log_path.read_text(encoding="utf-8", errors="replace")[-4000:],
        }
        (out / f"{name}.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        verdict = "ok" if report["ok"] else f"FAILED: {str(report['error'])[:300]}"
        print(f"{name}: {verdict} ({report['seconds']} s of {budget} s)", flush=True)
        reports.append(report)
    return reports


def report(folder: Path) -> None:
    """Write the "GPU smoke" section of docs/benchmarks.md from the step JSONs of a GPU run (fetched from $OUT);
    a dry run's are refused: they say nothing of a GPU."""
    from report import write_section

    reports = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(folder.glob("*.json"))]
    reports.sort(key=lambda item: list(STEPS).index(item["step"]))
    if not reports or any(item["dry_run"] for item in reports):
        sys.exit(f"error: {folder} holds no GPU run's step JSONs (a dry run's are not reported)")
    device = reports[0]["measurements"].get("gpu", {}) if reports[0]["step"] == "env" else {}
    lines = [
        f"## GPU smoke (bench/gpu_smoke.py) on {device.get('name', 'a GPU')}",
        "",
        "| step | result | seconds (budget) | finding |",
        "|---|---|---|---|",
    ]
    for item in reports:
        finding = "" if item["ok"] else str(item["error"]).splitlines()[0][:200].replace("|", "/")
        verdict = "ok" if item["ok"] else "failed"
        lines.append(f"| {item['step']} | {verdict} | {item['seconds']} ({item['budget_s']}) | {finding} |")
    lines += [
        "",
        "Each step's JSON (its measurements) is the record; rerun with `make device-kit` and the command above.",
    ]
    write_section("gpu_smoke", "\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on this CPU, the CUDA probe double")
    parser.add_argument("--out", type=Path, help="where each step's JSON goes (default $OUT, else bench/out/gpu_smoke)")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="models, specs and releases (not kept)")
    parser.add_argument("--llama-8b", action="store_true", help="also release a Llama-3.1-8B-shaped model")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    parser.add_argument("--report-from", type=Path, help="write docs/benchmarks.md's section from a GPU run's JSONs")
    parser.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report_from is not None:
        report(args.report_from)
        return
    options = Options(dry_run=args.dry_run, work=args.work.resolve())
    if args.step is not None:
        run_step(args.step, options, options.work / f"{args.step}.result.json")
        return
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else DEFAULT_OUT)
    names = args.only or [name for name, step in STEPS.items() if not step.optional or args.llama_8b]
    reports = drive(names, options, out)
    total = sum(item["seconds"] for item in reports)
    print(f"{sum(item['ok'] for item in reports)}/{len(reports)} steps ok in {total:.0f} s; JSON in {out}")
    sys.exit(0 if all(item["ok"] for item in reports) else 1)


if __name__ == "__main__":
    main()
