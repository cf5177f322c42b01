"""Baseline for bench/release_overhead.py: the same work as one demo release, as a plain script.

Convert the GGUF, quantize W4A16 (group size 64, RTN), save, reload, generate, and measure the
perplexity of base and quantized on the same held-out text. No caching, no manifest, no checks.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from llmcompressor import oneshot
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
GGUF_DIR = ROOT / ".cache" / "demo-models"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
RECIPE = {
    "quant_stage": {
        "quant_modifiers": {
            "QuantizationModifier": {
                "targets": ["Linear"],
                "ignore": ["lm_head"],
                "config_groups": {
                    "group_0": {
                        "targets": ["Linear"],
                        "weights": {
                            "num_bits": 4,
                            "type": "int",
                            "strategy": "group",
                            "symmetric": True,
                            "group_size": 64,
                        },
                    }
                },
            }
        }
    }
}


def perplexity(model: torch.nn.Module, ids: list[int], window: int = 512) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]])
            total += model(input_ids=chunk, labels=chunk).loss.item() * (chunk.shape[1] - 1)
            count += chunk.shape[1] - 1
    return math.exp(total / count)


def main(out_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF, dtype=torch.bfloat16)
    model.hf_quantizer = None
    del model.config.quantization_config
    base_dir, quant_dir = out_dir / "base", out_dir / "quantized"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    # oneshot reads the config from the model's own folder, which must be a plain checkpoint.
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype="auto")
    oneshot(model=model, recipe=yaml.safe_dump(RECIPE))
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
    print(f"perplexity base {base_ppl:.3f} quantized {quant_ppl:.3f}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(scratch))
