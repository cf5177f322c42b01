"""The resource plan: each stage's peak host RAM, GPU memory and disk, and where its model goes.

Estimated from config.json and the scheme alone, before any weight is downloaded, then checked
against a machine (declared in the spec's `runner:` or detected). Host-RAM figures include the
interpreters a stage runs (the constants below were measured on a CPU runner with the pinned tools).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hubpub.placement import CPU, Placement
from hubpub.resources.runner import GB, Gpu, Machine
from hubpub.resources.shape import ModelShape
from hubpub.resources.size import CheckpointSize, checkpoint_size
from hubpub.spec import ReleaseSpec

MB = 10**6

HUBPUB_RSS = 90 * MB
"""The hubpub process itself: pydantic, rich, huggingface_hub and the spec."""
TORCH_RSS = 490 * MB
"""An interpreter with torch and transformers imported and a model class built (measured: 465 MiB)."""
LLMCOMPRESSOR_RSS = 300 * MB
"""llmcompressor's import on top of torch (it pulls in accelerate, datasets and compressed-tensors)."""
LM_EVAL_RSS = 250 * MB
"""lm-eval with its task registry and datasets, on top of torch."""
VLLM_RSS = 1500 * MB
"""A vLLM engine process before weights and KV cache: its own torch, the compiled ops, the tokenizer."""
VLLM_CPU_KV_BYTES = 2**30
"""hubpub runs vLLM's CPU build with VLLM_CPU_KVCACHE_SPACE=1 (GiB)."""
GGUF_WORKING_COPIES = 1.0
"""Beside the bfloat16 model, transformers holds the dequantized GGUF tensors: about one more copy at the peak
(measured: 1051 MiB for SmolLM2-135M's 269 MB base, interpreter included)."""
CUDA_CONTEXT_BYTES = 600 * MB
"""The CUDA context and kernels each process holds on every GPU it uses."""
GPU_HEADROOM = 0.10
"""Of each GPU's memory, kept free for activations, fragmentation and the allocator."""
VLLM_GPU_MEMORY_UTILIZATION = 0.8
"""The share of each GPU hubpub lets vLLM take (hubpub.vllm.smoke.GPU_MEMORY_UTILIZATION)."""
VLLM_MAX_MODEL_LEN = 1024
"""The context hubpub's vLLM load asks for: its KV cache must hold one sequence this long."""
LOAD_SHARD_BYTES = 5 * GB
"""A GPU load still passes each safetensors shard (at most 5 GB by default) through host RAM."""
EVAL_TOKENS = 512
"""Tokens of one perplexity window (hubpub.stages.verify.PERPLEXITY_WINDOW) whose float32 logits are held twice."""


@dataclass(frozen=True)
class StagePlan:
    """One stage's needs (bytes) and the placement chosen for it on the machine."""

    stage: str
    ram_bytes: int
    gpu_bytes: int
    """GPU memory the stage's model and work need in all (0: the stage uses no GPU)."""
    disk_bytes: int
    """Disk in use once the stage is done: every file the release has written so far."""
    placement: Placement = CPU
    note: str = ""
    refusal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "ram_bytes": self.ram_bytes,
            "gpu_bytes": self.gpu_bytes,
            "disk_bytes": self.disk_bytes,
            "placement": self.placement.as_request(),
            "note": self.note,
            "refusal": self.refusal,
        }


@dataclass(frozen=True)
class ResourcePlan:
    """The resources of one variant's release on one machine; `estimable` is false with `reason` when the
    model's shape is unknown (nothing is then checked)."""

    variant: str
    repo_id: str
    machine: str
    estimable: bool
    reason: str | None = None
    parameters: int = 0
    base_bytes: int = 0
    checkpoint_bytes: int = 0
    decompressed_bytes: int = 0
    stages: tuple[StagePlan, ...] = field(default_factory=tuple)

    @property
    def refusals(self) -> list[str]:
        return [stage.refusal for stage in self.stages if stage.refusal]

    def placement(self, stage: str) -> Placement:
        return next((item.placement for item in self.stages if item.stage == stage), CPU)

    def as_dict(self) -> dict[str, Any]:
        facts = asdict(self)
        facts["stages"] = [stage.as_dict() for stage in self.stages]
        return facts

    def recorded(self) -> dict[str, Any]:
        """What the manifest keeps: the estimates and placements, not the machine's momentary free RAM and disk."""
        return {
            "parameters": self.parameters,
            "base_bytes": self.base_bytes,
            "checkpoint_bytes": self.checkpoint_bytes,
            "decompressed_bytes": self.decompressed_bytes,
            "stages": {
                stage.stage: {key: value for key, value in stage.as_dict().items() if key not in ("stage", "refusal")}
                for stage in self.stages
            },
        }


def plan_resources(release: ReleaseSpec, shape: ModelShape, machine: Machine) -> ResourcePlan:
    """Every stage's needs for `release` of a model of `shape`, placed on `machine` (or refused there)."""
    size = checkpoint_size(
        shape,
        release.scheme_info,
        group_size=release.effective_group_size,
        targets=release.targets,
        ignore=release.ignore,
    )
    estimator = _Estimator(release, shape, size, machine)
    return ResourcePlan(
        variant=release.variant,
        repo_id=release.repo_id,
        machine=machine.describe(),
        estimable=True,
        parameters=shape.parameters,
        base_bytes=shape.base_bytes,
        checkpoint_bytes=size.total,
        decompressed_bytes=estimator.decompressed,
        stages=tuple(estimator.stages()),
    )


def unestimable(release: ReleaseSpec, machine: Machine, reason: str) -> ResourcePlan:
    return ResourcePlan(release.variant, release.repo_id, machine.describe(), estimable=False, reason=reason)


class _Estimator:
    def __init__(self, release: ReleaseSpec, shape: ModelShape, size: CheckpointSize, machine: Machine) -> None:
        self.release, self.shape, self.size, self.machine = release, shape, size, machine
        self.base = shape.base_bytes
        self.checkpoint = size.total
        # compressed-tensors decompresses every quantized weight back to the base dtype when a model loads.
        self.decompressed = size.unquantized + size.quantized_parameters * shape.dtype_bytes
        # A local checkpoint folder is read in place; a Hub download or a GGUF conversion writes the base.
        self.base_disk = 0 if release.source is not None and not release.source.gguf_file else self.base
        self.gpus = machine.gpus

    def stages(self) -> list[StagePlan]:
        release = self.release
        planned = [self.resolve(), self.preflight(), self.quantize(), self.verify()]
        if release.verify.vllm != "off":
            planned.append(self.vllm())
        if release.evaluation is not None:
            planned.append(self.evaluate())
        planned += [self.card(), self.publish()]
        return [self._checked(stage) for stage in planned]

    def _cpu_load(self, parameters_bytes: int, file_bytes: int) -> int:
        """Host RAM of a transformers load on the CPU: hubpub computes in float32 there (4 bytes a parameter), and
        the memory-mapped file's pages stay resident while the model lives (measured: a bfloat16 base of 269 MB
        loaded in float32 adds 786 MiB)."""
        return parameters_bytes * 4 // self.shape.dtype_bytes + file_bytes

    def _logits_bytes(self) -> int:
        return 2 * EVAL_TOKENS * self.shape.vocab_size * 4

    def resolve(self) -> StagePlan:
        source = self.release.source
        if source is not None and source.gguf_file:
            ram = HUBPUB_RSS + TORCH_RSS + int(self.base * (1 + GGUF_WORKING_COPIES))
            return StagePlan("resolve", ram, 0, self.base_disk, note="convert the GGUF to bfloat16 safetensors")
        where = "read the local folder" if source is not None else "download the base from the Hub"
        return StagePlan("resolve", HUBPUB_RSS, 0, self.base_disk, note=where)

    def preflight(self) -> StagePlan:
        return StagePlan("preflight", HUBPUB_RSS, 0, self.base_disk, note="config and safetensors headers only")

    def _calibration(self) -> tuple[int, int]:
        """(tokens of one sample, samples) when the recipe reads calibration data, else (0, 0)."""
        calibration = self.release.calibration
        if calibration is None or not self.release.scheme_info.needs_calibration(self.release.algorithm):
            return 0, 0
        return calibration.max_seq_length, calibration.num_samples

    def quantize(self) -> StagePlan:
        shape = self.shape
        tokens, samples = self._calibration()
        # The sequential pipeline keeps every sample's hidden states between layers on the CPU: inputs and outputs.
        cached_activations = 2 * samples * tokens * shape.hidden_size * shape.dtype_bytes
        ram = HUBPUB_RSS + TORCH_RSS + LLMCOMPRESSOR_RSS + self.base + self.checkpoint + cached_activations
        disk = self.base_disk + self.checkpoint
        if not self.gpus:
            return StagePlan("quantize", ram, 0, disk, note="on the CPU, in the base dtype")
        layer = shape.layer_parameters * shape.dtype_bytes
        working = max(tokens, 1) * (4 * shape.hidden_size + 3 * shape.intermediate_size) * shape.dtype_bytes
        hessians = 0
        if self.release.algorithm == "gptq":
            hessians = sum(linear.in_features**2 * 4 for linear in shape.layer_linears(0))
            largest = max(linear.out_features * linear.in_features for linear in shape.layer_linears(0))
            hessians += largest * 4  # the weight being solved, in float32
        need = CUDA_CONTEXT_BYTES + layer + working + hessians
        note = "the model on the CPU; one decoder layer at a time on GPU 0"
        return StagePlan("quantize", ram, need, disk, self._one_gpu(need), note=note)

    def _one_gpu(self, need: int) -> Placement:
        gpu = self.gpus[0]
        return Placement(gpu_budgets={gpu.index: self._usable(gpu)}) if need <= self._usable(gpu) else CPU

    def _usable(self, gpu: Gpu) -> int:
        return int(gpu.memory_bytes * (1 - GPU_HEADROOM)) - CUDA_CONTEXT_BYTES

    def _transformers_load(self, stage: str, weights: int, note: str, *, base_too: bool = False) -> StagePlan:
        """A transformers load of `weights` bytes (base dtype), spread over the GPUs or on the CPU in float32.

        With `base_too` the base is loaded first: on the CPU its memory is counted as still resident when the
        quantized model loads (measured: the verify child peaks at both models' float32 size, not one).
        """
        disk = self.base_disk + self.checkpoint
        if not self.gpus:
            loaded = self._cpu_load(self.decompressed, self.checkpoint)
            if base_too:
                loaded += self._cpu_load(self.base, self.base)
            ram = HUBPUB_RSS + TORCH_RSS + loaded + self._logits_bytes()
            return StagePlan(stage, ram, 0, disk, note=f"{note}, float32 on the CPU")
        need = weights + self._logits_bytes() // 2
        placement, offload = self._spread(need)
        ram = HUBPUB_RSS + TORCH_RSS + min(LOAD_SHARD_BYTES, weights) + offload
        return StagePlan(stage, ram, need, disk, placement, note=f"{note}, device_map=auto over the GPUs")

    def _spread(self, need: int) -> tuple[Placement, int]:
        """The fewest GPUs that hold `need` bytes, each within its usable memory; else all of them plus CPU offload
        when the runner allows it (the placement is the CPU when neither fits)."""
        for count in range(1, len(self.gpus) + 1):
            chosen = self.gpus[:count]
            if sum(self._usable(gpu) for gpu in chosen) >= need:
                return Placement(gpu_budgets={gpu.index: self._usable(gpu) for gpu in chosen}), 0
        spill = need - sum(self._usable(gpu) for gpu in self.gpus)
        if self.machine.cpu_offload:
            return Placement({gpu.index: self._usable(gpu) for gpu in self.gpus}, cpu_offload_bytes=spill), spill
        return CPU, 0

    def verify(self) -> StagePlan:
        # The base, then the quantized checkpoint decompressed: never both at once.
        weights = max(self.base, self.decompressed)
        return self._transformers_load("verify", weights, "base then quantized", base_too=True)

    def evaluate(self) -> StagePlan:
        assert self.release.evaluation is not None
        weights = max(self.base, self.decompressed)
        plan = self._transformers_load("evaluate", weights, "lm-eval, base then quantized", base_too=True)
        return _with(plan, ram=plan.ram_bytes + LM_EVAL_RSS)

    def vllm(self) -> StagePlan:
        disk = self.base_disk + self.checkpoint
        shape = self.shape
        kv = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * shape.dtype_bytes * VLLM_MAX_MODEL_LEN
        if not self.gpus:
            ram = HUBPUB_RSS + VLLM_RSS + self.checkpoint + VLLM_CPU_KV_BYTES
            return StagePlan("vllm", ram, 0, disk, note="vLLM's CPU build, 1 GiB of KV cache")
        ram = HUBPUB_RSS + VLLM_RSS + min(LOAD_SHARD_BYTES, self.checkpoint)
        need = self.checkpoint + kv
        for size in _powers_of_two(len(self.gpus)):
            if not _divides_heads(size, shape):
                continue
            chosen = self.gpus[:size]
            per_gpu = need // size + CUDA_CONTEXT_BYTES
            if all(per_gpu <= gpu.memory_bytes * VLLM_GPU_MEMORY_UTILIZATION for gpu in chosen):
                budgets = {gpu.index: int(gpu.memory_bytes * VLLM_GPU_MEMORY_UTILIZATION) for gpu in chosen}
                return StagePlan(
                    "vllm",
                    ram,
                    need,
                    disk,
                    Placement(budgets, tensor_parallel_size=size),
                    note=f"tensor parallel {size}",
                )
        return StagePlan("vllm", ram, need, disk, CPU, note="vLLM on the GPUs")

    def card(self) -> StagePlan:
        # The Transformers snippet and the vLLM snippet run one after the other.
        load = self._transformers_load("card", self.decompressed, "the card's Transformers snippet")
        served = self.vllm()
        return StagePlan(
            "card",
            max(load.ram_bytes, served.ram_bytes),
            max(load.gpu_bytes, served.gpu_bytes),
            load.disk_bytes,
            load.placement,
            note="the card's Transformers and vLLM snippets, one after the other",
        )

    def publish(self) -> StagePlan:
        # The round trip downloads the pushed files and loads them; a local Hub keeps its own copy.
        load = self._transformers_load("publish", self.decompressed, "round trip: download and load")
        return _with(load, disk=load.disk_bytes + 2 * self.checkpoint)

    def _checked(self, stage: StagePlan) -> StagePlan:
        machine = self.machine
        problems = []
        if machine.ram_bytes is not None and stage.ram_bytes > machine.ram_bytes:
            offload = " (or GPUs that hold the model without CPU offload)" if stage.placement.cpu_offload_bytes else ""
            problems.append(
                f"{_gb(stage.ram_bytes)} of host RAM, the runner has {_gb(machine.ram_bytes)}"
                f" (would fit: a runner with at least {_gb(stage.ram_bytes)} of RAM{offload})"
            )
        if stage.gpu_bytes and not stage.placement.on_gpu:
            problems.append(self._gpu_problem(stage))
        if machine.disk_bytes is not None and stage.disk_bytes > machine.disk_bytes:
            problems.append(
                f"{_gb(stage.disk_bytes)} of disk, the runner has {_gb(machine.disk_bytes)} free"
                f" (would fit: at least {_gb(stage.disk_bytes)} free for the work folder)"
            )
        if not problems:
            return stage
        return _with(stage, refusal=f"stage {stage.stage} needs " + "; and ".join(problems))

    def _gpu_problem(self, stage: StagePlan) -> str:
        gpus = self.gpus
        have = f"{len(gpus)} × {_gb(min(gpu.memory_bytes for gpu in gpus))} GPU"
        need = stage.gpu_bytes
        if stage.stage == "quantize":
            fits = f"one GPU of at least {_gb(int((need + CUDA_CONTEXT_BYTES) / (1 - GPU_HEADROOM)))}"
        elif stage.stage == "vllm":
            fits = f"GPUs holding {_gb(int(need / VLLM_GPU_MEMORY_UTILIZATION))} in all, a power of two of them"
        else:
            per_gpu = min(self._usable(gpu) for gpu in gpus)
            count = -(-need // per_gpu) if per_gpu > 0 else 0
            fits = f"{count} such GPUs, bigger GPUs, or `runner.cpu_offload: true`"
        return f"{_gb(need)} of GPU memory, the runner has {have} (would fit: {fits})"


def _with(stage: StagePlan, **changes: Any) -> StagePlan:
    names = {"ram": "ram_bytes", "disk": "disk_bytes", "refusal": "refusal"}
    return StagePlan(**{**stage.__dict__, **{names[key]: value for key, value in changes.items()}})


def _powers_of_two(limit: int) -> list[int]:
    sizes, size = [], 1
    while size <= limit:
        sizes.append(size)
        size *= 2
    return sizes


def _divides_heads(size: int, shape: ModelShape) -> bool:
    kv = shape.num_kv_heads
    return shape.num_heads % size == 0 and (kv % size == 0 or size % kv == 0)


def _gb(value: int) -> str:
    return f"{value / GB:.1f} GB"
