"""A STAND-IN for a Python environment with vLLM, which cannot be installed here.

`build_stand_in` writes an executable that runs this venv's Python with `-S` (no site-packages, so
hubpub itself is not importable, as in a real vLLM environment) and puts a fake `vllm` and `torch`
on PYTHONPATH. The fake imitates vLLM 0.33's offline interface, its log lines, its platform probes
and a few of its failures (`STANDIN_VLLM_MODE`): an exception raised inside a linear layer while it
chooses its kernel (`crash`) or during its forward pass (`generate-crash`), a hard crash that leaves no
Python error (`segfault`), a failing import (`import-crash`), a hang (`timeout`) and garbage results.
`STANDIN_CUDA=0` makes the fake torch report a CPU. hubpub's real child script runs against it.
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

# STAND_IN: a fake vLLM package, shaped like vLLM 0.33's offline API, logging like vLLM does.
FAKE_VLLM = r'''
"""STAND_IN for vLLM, which cannot be installed here: imitates its offline API, outputs and log lines."""
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__version__ = "0.33.0+stand-in"
MODE = os.environ.get("STANDIN_VLLM_MODE", "success")
if MODE == "import-crash":
    raise ImportError("STAND_IN libcudart.so.12: cannot open shared object file: No such file or directory")
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_GRANDCHILD = (
    "import os, signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "time.sleep(60)\n"
)


def _log(level, where, message):
    if _LEVELS[level] < _LEVELS[os.environ.get("VLLM_LOGGING_LEVEL", "INFO")]:
        return
    stream = sys.stderr if os.environ.get("VLLM_LOGGING_STREAM") == "ext://sys.stderr" else sys.stdout
    print(f"{level} 08-22 10:11:12 [{where}] {message}", file=stream, flush=True)


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    max_tokens: int | None = 16


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list
    cumulative_logprob: float | None
    logprobs: None
    finish_reason: str | None = None


@dataclass
class RequestOutput:
    request_id: str
    prompt: str | None
    prompt_token_ids: list
    outputs: list
    finished: bool


class _WNA16Method:
    """STAND_IN for a quantization method: it chooses the layer's kernel and runs the layer's matmul."""

    def create_weights(self, layer):
        if MODE in ("crash", "wrapped-crash"):
            raise ValueError(
                "Failed to find a kernel that can implement the WNA16 linear layer. Reasons: \n"
                " MacheteLinearKernel cannot implement due to: requires capability 90,"
                " current compute capability is 80\n"
                "\n\n"
                " MarlinLinearKernel cannot implement due to: Weight output_size_per_partition = 100 is not"
                " divisible by min_thread_n = 64.  "
            )

    def apply(self, layer, x):
        if MODE == "generate-crash":
            raise AttributeError("'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'")
        return x


class ColumnParallelLinear:
    """STAND_IN for vLLM's linear layer: it keeps its prefix, then lets its method choose a kernel."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.quant_method = _WNA16Method()
        self.quant_method.create_weights(layer=self)

    def forward(self, x):
        return self.quant_method.apply(self, x)


class _Tokenizer:
    def __init__(self, model):
        config = Path(model) / "tokenizer_config.json"
        self.chat_template = json.loads(config.read_text()).get("chat_template") if config.is_file() else None


class LLM:
    def __init__(self, model, *, seed=0, gpu_memory_utilization=0.92, enforce_eager=False, **kwargs):
        arguments = dict(model=model, seed=seed, gpu_memory_utilization=gpu_memory_utilization,
                         enforce_eager=enforce_eager, **kwargs)
        _log("INFO", "llm.py:343", "STAND_IN LLM arguments: " + json.dumps(arguments, sort_keys=True))
        watched = ("HF_HUB_OFFLINE", "VLLM_LOGGING_LEVEL", "VLLM_LOGGING_STREAM", "VLLM_ENABLE_V1_MULTIPROCESSING",
                   "PYTHONUNBUFFERED", "VLLM_CPU_KVCACHE_SPACE")
        _log("INFO", "llm.py:344", "STAND_IN environment: " + json.dumps({k: os.environ.get(k) for k in watched}))
        print("STAND_IN line on stdout", flush=True)
        _log("INFO", "model.py:1702", f"Using max model len {kwargs.get('max_model_len')}")
        _log("INFO", "cuda.py:312", "Using FLASH_ATTN backend on V1 engine.")
        if MODE == "crash" and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") != "0":
            raise RuntimeError("Engine core initialization failed. See root cause above. Failed core proc(s): {}")
        if MODE == "segfault":
            print("RuntimeError: CUDA error: an illegal memory access was encountered", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGSEGV)
        if MODE == "timeout":
            pid_file = Path(os.environ["STANDIN_PID_FILE"])
            grandchild_file = pid_file.with_suffix(".grandchild")
            subprocess.Popen([sys.executable, "-S", "-c", _GRANDCHILD, str(grandchild_file)])
            deadline = time.monotonic() + 10
            while not grandchild_file.is_file() and time.monotonic() < deadline:
                time.sleep(0.02)
            pid_file.write_text(f"{os.getpid()} {grandchild_file.read_text()}")
            time.sleep(60)
        for layer in ("model.layers.0.self_attn.qkv_proj", "model.layers.0.mlp.gate_up_proj"):
            _log("DEBUG", "compressed_tensors.py:688", f"Using scheme: CompressedTensorsWNA16 for {layer}")
        try:
            self._layers = [ColumnParallelLinear(layer) for layer in ("model.layers.0.self_attn.qkv_proj",)]
        except ValueError as cause:
            if MODE == "wrapped-crash":  # an outer exception whose own frames name no layer
                raise RuntimeError("STAND_IN engine wrapper: the model could not be built") from cause
            raise
        _log("INFO", "compressed_tensors_wNa16.py:112", "Using MarlinLinearKernel for CompressedTensorsWNA16")
        self._tokenizer = _Tokenizer(model)

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling_params=None, *, use_tqdm=True, **kwargs):
        return self._answer(list(prompts), sampling_params or SamplingParams(), "generate")

    def chat(self, messages, sampling_params=None, *, use_tqdm=True, add_generation_prompt=True, **kwargs):
        conversations = messages if messages and isinstance(messages[0], list) else [messages]
        prompts = [conversation[-1]["content"] for conversation in conversations]
        return self._answer(prompts, sampling_params or SamplingParams(), "chat")

    def _answer(self, prompts, params, method):
        sampling = f"temperature={params.temperature} max_tokens={params.max_tokens}"
        _log("INFO", "llm.py:500", f"STAND_IN {method}: {sampling}")
        for layer in self._layers:
            layer.forward(prompts)
        answers = []
        for index, prompt in enumerate(prompts):
            answer = f"The stand-in answers {prompt} via {method}"
            text = {"degenerate": "the " * 12, "non-text": None}.get(MODE, answer)
            token_ids = list(range(100 + index, 100 + index + params.max_tokens))
            completion = CompletionOutput(0, text, token_ids, None, None, "length")
            answers.append(RequestOutput(str(index), None, [1, 2, 3], [completion], True))
        return answers[:-1] if MODE == "missing-output" else answers
'''

# STAND_IN: enough of torch for the child's version, GPU and CPU questions.
FAKE_TORCH = r'''
"""STAND_IN for torch in the vLLM environment."""
import os

__version__ = "2.14.0+stand-in"


def _unsupported():
    raise RuntimeError("STAND_IN: this probe fails")


class cpu:
    """STAND_IN for torch.cpu's private instruction-set probes: one is missing (amx_tile), one raises."""

    _is_avx2_supported = staticmethod(lambda: True)
    _is_avx512_supported = staticmethod(lambda: True)
    _is_avx512_bf16_supported = staticmethod(lambda: False)
    _is_vnni_supported = staticmethod(lambda: True)
    _is_amx_fp16_supported = staticmethod(_unsupported)


class backends:
    class cpu:
        @staticmethod
        def get_cpu_capability():
            return "AVX512"


class cuda:
    @staticmethod
    def is_available():
        return os.environ.get("STANDIN_CUDA", "1") == "1"

    @staticmethod
    def get_device_name(index=0):
        return "NVIDIA H100 80GB HBM3"

    @staticmethod
    def get_device_capability(index=0):
        return (9, 0)
'''

# STAND_IN: vllm.platforms and vllm._custom_ops, as far as the child asks them about the CPU.
FAKE_VLLM_PLATFORMS = r'''
"""STAND_IN for vllm.platforms."""


class _CpuPlatform:
    device_type = "cpu"

    def is_zen_cpu(self):
        return True


current_platform = _CpuPlatform()
'''
FAKE_VLLM_CUSTOM_OPS = r'''
"""STAND_IN for vllm._custom_ops."""


def cpu_has_amx_fp8():
    return True
'''

# STAND_IN: the interpreter hubpub is pointed at. Two modes skip the child script to imitate a broken result.
WRAPPER = """#!/bin/sh
# STAND_IN for the Python of a vLLM environment (vLLM cannot be installed here).
case "$STANDIN_VLLM_MODE" in
  not-json) printf '{"vllm_version": "0.33.0", "outp' > "$3"; exit 0 ;;
  no-result) exit 0 ;;
esac
PYTHONPATH=@PACKAGES@ exec @PYTHON@ -S "$@"
"""


def build_stand_in(root: Path) -> Path:
    """STAND_IN: an executable that runs the real child script against the fake vllm package."""
    packages = root / "packages"
    (packages / "vllm").mkdir(parents=True)
    (packages / "torch").mkdir()
    (packages / "vllm" / "__init__.py").write_text(FAKE_VLLM, encoding="utf-8")
    (packages / "vllm" / "platforms.py").write_text(FAKE_VLLM_PLATFORMS, encoding="utf-8")
    (packages / "vllm" / "_custom_ops.py").write_text(FAKE_VLLM_CUSTOM_OPS, encoding="utf-8")
    (packages / "torch" / "__init__.py").write_text(FAKE_TORCH, encoding="utf-8")
    wrapper = root / "bin" / "python"
    wrapper.parent.mkdir()
    script = WRAPPER.replace("@PACKAGES@", shlex.quote(str(packages))).replace("@PYTHON@", shlex.quote(sys.executable))
    wrapper.write_text(script, encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper
