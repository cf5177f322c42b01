"""The baseline of the release benchmarks: one demo variant's work as a plain script.

The schemes' arguments are compressed-tensors' presets, written out; `--group-size` replaces the preset's
group size (the demo's hidden size, 576, is not a multiple of 128).

Convert the GGUF, quantize with llm-compressor (RTN), save, reload, generate, and measure the
perplexity of base and quantized on the same held-out text; with `--evaluate`, also run lm-eval on
base and quantized with the demo's tasks. No caching, no manifest, no checks.

    python bench/plain_release.py [--scheme W4A16] [--group-size 64] [--evaluate] [OUT_DIR]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
import yaml
from llmcompressor import oneshot
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
GGUF_DIR = ROOT / ".cache" / "demo-models"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TASKS_DIR = ROOT / "model_specs" / "demo" / "tasks"
WEIGHTS = {
    "W4A16": {"num_bits": 4, "type": "int", "strategy": "group", "symmetric": True, "group_size": 128},
    "W4A16_ASYM": {"num_bits": 4, "type": "int", "strategy": "group", "symmetric": False, "group_size": 128},
    "W8A16": {"num_bits": 8, "type": "int", "strategy": "group", "symmetric": True, "group_size": 128},
    "W8A8": {"num_bits": 8, "type": "int", "strategy": "channel", "symmetric": True},
}
ACTIVATIONS = {"W8A8": {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True}}


def recipe(scheme: str, group_size: int | None) -> str:
    group: dict[str, object] = {"targets": ["Linear"], "weights": dict(WEIGHTS[scheme])}
    if group_size is not None:
        group["weights"]["group_size"] = group_size  # type: ignore[index]
    if scheme in ACTIVATIONS:
        group["input_activations"] = ACTIVATIONS[scheme]
    modifier = {"targets": ["Linear"], "ignore": ["lm_head"], "config_groups": {"group_0": group}}
    return yaml.safe_dump({"quant_stage": {"quant_modifiers": {"QuantizationModifier": modifier}}})


def perplexity(model: torch.nn.Module, ids: list[int], window: int = 512) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]])
            total += model(input_ids=chunk, labels=chunk).loss.item() * (chunk.shape[1] - 1)
            count += chunk.shape[1] - 1
    return math.exp(total / count)


def evaluate(model_dir: Path) -> dict[str, object]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        device="cpu",
        tasks=["demo_capitals", "demo_wikitext"],
        limit=20,
        batch_size=8,
        task_manager=TaskManager(include_path=str(TASKS_DIR)),
    )
    assert results is not None
    return results["results"]


def main(out_dir: Path, scheme: str, group_size: int | None, with_evaluation: bool) -> None:
    tokenizer = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.bfloat16)
    model.hf_quantizer = None
    del model.config.quantization_config
    base_dir, quant_dir = out_dir / "base", out_dir / "quantized"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    # oneshot reads the config from the model's own folder, which must be a plain checkpoint.
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    oneshot(model=model, recipe=recipe(scheme, group_size))
    model.save_pretrained(quant_dir, save_compressed=True)
    tokenizer.save_pretrained(quant_dir)
    del model
    text = (ROOT / "hubpub" / "data" / "heldout.txt").read_text(encoding="utf-8")
    ids = tokenizer(text)["input_ids"]
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    base_ppl = perplexity(base, ids)
    del base
    quantized = AutoModelForCausalLM.from_pretrained(quant_dir, dtype=torch.float32)
    quant_ppl = perplexity(quantized, ids)
    for prompt in ("What is the capital of Germany?", "What is the largest ocean on Earth?"):
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        output = quantized.generate(**inputs, max_new_tokens=16, do_sample=False)
        print(tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    del quantized
    print(f"perplexity base {base_ppl:.3f} quantized {quant_ppl:.3f}")
    if with_evaluation:
        print("base", evaluate(base_dir))
        print("quantized", evaluate(quant_dir))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir", nargs="?", type=Path)
    parser.add_argument("--scheme", default="W4A16", choices=sorted(WEIGHTS))
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--evaluate", action="store_true")
    arguments = parser.parse_args()
    group_size = arguments.group_size if WEIGHTS[arguments.scheme]["strategy"] == "group" else None
    with tempfile.TemporaryDirectory() as scratch:
        main(arguments.out_dir or Path(scratch), arguments.scheme, group_size, arguments.evaluate)
