"""The quantize stage on a randomly initialised model of SmolLM2-1.7B's shape: time and peak memory.

Meant for a GPU machine (peak GPU memory is recorded when CUDA is present); it runs on a CPU too.
Nothing is downloaded: the shape is written here, and the tokenizer comes from the demo model's
conversion (SmolLM2 shares one 49,152-token vocabulary across sizes).

    python bench/gpu_quantize.py [--scheme W4A16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from hubpub.hashing import HashCache
from hubpub.manifest import StageResult
from hubpub.measure import measured
from hubpub.spec import ReleaseSpec
from hubpub.stages import preflight, quantize, resolve
from hubpub.stages.context import StageContext

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2_1_7B = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 24,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 130000,
    "tie_word_embeddings": True,
    "vocab_size": 49152,
    "bos_token_id": 1,
    "eos_token_id": 2,
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def build_random_model(folder: Path, tokenizer_source: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**SMOLLM2_1_7B)).to(torch.bfloat16)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_source / name).is_file():
            shutil.copyfile(tokenizer_source / name, folder / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="W4A16")
    parser.add_argument("--tokenizer", type=Path, help="a folder with SmolLM2 tokenizer files")
    parser.add_argument("--keep", type=Path, help="keep the work folder here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="hubpub-gpu-bench-"))
    base = work / "base"
    tokenizer = args.tokenizer or next((ROOT / ".hubpub" / "work" / "cache" / "gguf").glob("*/"), None)
    if tokenizer is None:
        sys.exit("no tokenizer folder: run `make demo` first or pass --tokenizer")
    if not (base / "config.json").is_file():
        base.mkdir(parents=True, exist_ok=True)
        build_random_model(base, tokenizer)
    release = ReleaseSpec.model_validate(
        {
            "base_model": "bench/random-smollm2-1.7b-shape",
            "source": {"path": str(base)},
            "repo_id": "bench/x",
            "scheme": args.scheme,
        }
    )
    hashes = HashCache(work / "sha256.json")
    done: dict[str, StageResult] = {}
    for name, stage in (("resolve", resolve), ("preflight", preflight), ("quantize", quantize)):
        folder = work / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        ctx = StageContext(release, work / "spec.yaml", work / "cache", folder, dict(done), hashes)
        with measured() as measurement:
            output = stage.run(ctx)
        done[name] = StageResult(
            stage=name,
            status="done",
            fingerprint="",
            seconds=measurement.seconds,
            peak_rss_mb=measurement.peak_rss_mb,
            peak_gpu_mb=measurement.peak_gpu_mb,
            metrics=output.metrics,
            outputs=output.outputs,
        )
    result = done["quantize"]
    facts = {
        "scheme": args.scheme,
        "device": result.metrics["device"],
        "seconds": round(result.seconds, 1),
        "peak_rss_mb": round(result.peak_rss_mb or 0),
        "peak_gpu_mb": None if result.peak_gpu_mb is None else round(result.peak_gpu_mb),
        "parameters": done["preflight"].metrics["parameters"],
        "checkpoint_bytes": result.metrics["checkpoint_bytes"],
    }
    print(json.dumps(facts, indent=2))
    gpu = "not measured (no CUDA)" if facts["peak_gpu_mb"] is None else f"{facts['peak_gpu_mb']} MiB"
    write_section(
        f"quantize_1_7b_{facts['device'].split()[0]}",
        "\n".join(
            [
                f"## Quantize stage, SmolLM2-1.7B shape, random weights, {args.scheme} RTN on {facts['device']}"
                " (bench/gpu_quantize.py)",
                "",
                "| parameters | wall time | peak RSS | peak GPU memory | checkpoint |",
                "|---|---|---|---|---|",
                f"| {facts['parameters'] / 1e9:.2f} B | {facts['seconds']} s | {facts['peak_rss_mb']} MiB | {gpu} |"
                f" {facts['checkpoint_bytes'] / 1e9:.2f} GB |",
            ]
        ),
    )


if __name__ == "__main__":
    main()
