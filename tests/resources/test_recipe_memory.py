"""The quantize stage's memory by algorithm: AWQ's activation cache, SmoothQuant+GPTQ planned as GPTQ."""

from __future__ import annotations

from typing import Any

from hubpub.resources import Machine, plan_resources, shape_from_config
from hubpub.resources.plan import StagePlan
from hubpub.resources.runner import GB, Gpu
from hubpub.spec import ReleaseSpec
from tests.resources.shapes import SMOLLM2_1_7B


def _quantize(scheme: str, algorithm: str, samples: int, tokens: int, gpus: int = 1, gb: float = 24) -> StagePlan:
    release = ReleaseSpec.model_validate(
        {
            "base_model": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
            "repo_id": "test/smollm2",
            "scheme": scheme,
            "algorithm": algorithm,
            "calibration": {"dataset": "org/calibration", "num_samples": samples, "max_seq_length": tokens},
        }
    )
    machine = Machine(tuple(Gpu(index, "sim", int(gb * GB)) for index in range(gpus)), None, None)
    plan = plan_resources(release, shape_from_config(SMOLLM2_1_7B), machine)
    return next(stage for stage in plan.stages if stage.stage == "quantize")


def _beyond_rtn(samples: int, tokens: int) -> int:
    """GPU bytes AWQ's quantize needs beyond round-to-nearest's with the same calibration set."""
    return _quantize("W4A16", "awq", samples, tokens).gpu_bytes - _quantize("W4A16", "rtn", samples, tokens).gpu_bytes


def test_awq_holds_every_samples_layer_inputs_on_the_gpu() -> None:
    small, large = _beyond_rtn(64, 512), _beyond_rtn(256, 2048)
    per_added_token = (large - small) / (256 * 2048 - 64 * 512)
    # At least the bfloat16 inputs of the attention block, the MLP and down_proj (2048 + 2048 + 8192 values)
    # for every calibration token, and each of them costs the same.
    assert per_added_token >= 2 * (2048 + 2048 + 8192)
    assert small >= per_added_token * 64 * 512
    # Besides the tokens: a copy of the weights it balances, gate_proj and up_proj (2 x 8192 x 2048 in bfloat16).
    assert small - per_added_token * 64 * 512 >= 2 * 2 * 8192 * 2048


def test_awq_with_a_long_calibration_set_is_refused_where_gptq_fits() -> None:
    awq = _quantize("W4A16", "awq", 512, 2048)
    gptq = _quantize("W4A16", "gptq", 512, 2048)
    assert gptq.refusal is None and gptq.placement.on_gpu
    assert awq.refusal is not None
    assert (
        awq.refusal.startswith("stage quantize needs ") and "GPU memory, the runner has 1 × 24.0 GB GPU" in awq.refusal
    )
    assert "(would fit: one GPU of at least" in awq.refusal
    # The same variant with llm-compressor's example calibration (256 samples of 512 tokens) fits.
    assert _quantize("W4A16", "awq", 256, 512).refusal is None


def test_awq_on_the_cpu_holds_its_cache_in_host_ram() -> None:
    awq = _quantize("W4A16", "awq", 128, 1024, gpus=0)
    rtn = _quantize("W4A16", "rtn", 128, 1024, gpus=0)
    assert awq.gpu_bytes == rtn.gpu_bytes == 0
    assert awq.ram_bytes - rtn.ram_bytes >= 128 * 1024 * 2 * (2048 + 2048 + 8192)


def test_smoothquant_then_gptq_needs_what_gptq_needs() -> None:
    args: dict[str, Any] = {"samples": 512, "tokens": 2048}
    smoothquant = _quantize("W8A8", "smoothquant+gptq", **args)
    gptq = _quantize("W8A8", "gptq", **args)
    rtn = _quantize("W8A8", "rtn", **args)
    # SmoothQuant's statistics are two vectors per mapping; GPTQ's Hessians are what it adds over RTN.
    assert (smoothquant.ram_bytes, smoothquant.gpu_bytes) == (gptq.ram_bytes, gptq.gpu_bytes)
    assert smoothquant.gpu_bytes > rtn.gpu_bytes
