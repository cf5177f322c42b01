"""Verifying on a CPU: weights stay at the checkpoint's dtype, the arithmetic is float32, and the results are a
float32 load's, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubpub.quality import heldout_text
from hubpub.stages._float32 import compute_in_float32
from hubpub.stages._verify_child import main as verify_child
from hubpub.stages._verify_child import perplexity

PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def bfloat16_model(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("bfloat16")
    AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.bfloat16).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(folder)
    return folder


def _inputs(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer, tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )


def test_logits_and_greedy_answers_equal_a_float32_load(bfloat16_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    widened = compute_in_float32(AutoModelForCausalLM.from_pretrained(bfloat16_model, dtype="auto"))
    float32 = AutoModelForCausalLM.from_pretrained(bfloat16_model, dtype=torch.float32)
    tokenizer, inputs = _inputs(bfloat16_model)
    with torch.no_grad():
        logits = widened(**inputs).logits
        expected = float32(**inputs).logits
        answer = widened.generate(**inputs, max_new_tokens=12, do_sample=False)
        expected_answer = float32.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, expected)
    assert torch.equal(answer, expected_answer)
    assert "Paris" in tokenizer.decode(answer[0], skip_special_tokens=True)
    assert {parameter.dtype for parameter in widened.parameters()} == {torch.bfloat16}


def test_a_failing_forward_leaves_the_weights_narrow(bfloat16_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = compute_in_float32(AutoModelForCausalLM.from_pretrained(bfloat16_model, dtype="auto"))
    down = model.model.layers[0].mlp.down_proj

    def fail(module: Any, args: Any) -> None:
        raise RuntimeError("provoked")

    down.register_forward_pre_hook(fail)  # runs after the widening, in place of the forward
    with pytest.raises(RuntimeError, match="provoked"), torch.no_grad():
        model(input_ids=torch.tensor([[1, 2, 3]]))
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}


def test_the_verify_child_reports_both_dtypes_and_the_float32_perplexity(bfloat16_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = verify_child(
        {
            "checkpoint": str(bfloat16_model),
            "base_dir": str(bfloat16_model),
            "prompts": [PROMPT],
            "max_new_tokens": 12,
            "heldout": str(heldout_text()),
            "window": 512,
        }
    )
    float32 = AutoModelForCausalLM.from_pretrained(bfloat16_model, dtype=torch.float32)
    token_ids = AutoTokenizer.from_pretrained(bfloat16_model)(heldout_text().read_text(encoding="utf-8"))["input_ids"]
    assert (result["device"], result["dtype"], result["weights_dtype"]) == ("cpu", "float32", "bfloat16")
    assert result["perplexity"] == result["base_perplexity"] == perplexity(float32, token_ids, 512)
    assert "Paris" in result["generations"][0]["output"]
