"""The resource plan: each stage's peak host RAM, GPU memory and disk, and where its model goes.

Estimated from config.json and the scheme alone, before any weight is downloaded, then checked
against a machine (declared in the spec's `runner:` or detected). Host-RAM figures include the
interpreters a stage runs (the constants below were measured on a CPU runner with the pinned tools).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hubpub.device_map import ModelSizes
from hubpub.errors import PlacementError
from hubpub.placement import CPU, Placement
from hubpub.resources.runner import GB, Gpu, Machine
from hubpub.resources.shape import ModelShape
from hubpub.resources.size import CheckpointSize, checkpoint_size
from hubpub.schemes import MODIFIER_FOR_ALGORITHM
from hubpub.spec import ReleaseSpec

MB = 10**6

HUBPUB_RSS = 48 * MB
"""The hubpub process (pydantic, rich, huggingface_hub, the spec, the live view), as its share of memory (PSS): it
never loads a model (measured: 44-46 MiB)."""
FORK_SERVER_RSS = 570 * MB
"""The chained fork servers (hubpub.warm): one with torch and transformers, and the one forked from it that adds
llmcompressor and lm_eval; the children they fork share these pages (measured with the CLI: 540-575 MiB)."""
TORCH_RSS = 490 * MB
"""A fresh interpreter with torch and transformers imported, as the card's snippet runs (measured: 465 MiB)."""
QUANTIZE_WORK = 260 * MB
"""llm-compressor's own working memory besides the model and the compressed copy of its weights."""
QUANTIZE_WORK_SHARE = 0.13
"""...plus this share of the base: transient float copies of the layers being compressed (measured on the demo
model and the SmolLM2-1.7B shape: 290 and 684 MiB of working memory)."""
LM_EVAL_WORK = 490 * MB
"""lm-eval's task data, requests and batches of logits beside the models (measured on the demo tasks, batch 8)."""
VLLM_RSS = 900 * MB
"""A vLLM engine process before weights and KV cache: its own torch, vLLM's ops, the tokenizer (eager, in-process,
as hubpub's check runs it)."""
VLLM_COMPILED_RSS = 2070 * MB
"""The same for the card's vLLM snippet, vLLM's default engine: a separate engine process and the compiled model
(measured on the CPU build: 2 GB more than the eager check)."""
VLLM_CPU_KV_BYTES = 2**30
"""hubpub runs vLLM's CPU build with VLLM_CPU_KVCACHE_SPACE=1 (GiB)."""
GGUF_WORKING_COPIES = 1.7
"""Beside the bfloat16 model, transformers holds the GGUF's dequantized tensors and the file's pages at the peak
(measured: 1248 MiB for SmolLM2-135M's 269 MB base, the CLI and the fork server included)."""
HEAP_RETURN_BYTES = 32 * 2**20
"""glibc's largest mmap threshold: float tensors at least this big are given back to the system when freed, so
a model loaded after another reuses its memory; smaller ones stay in the heap and the second load adds to it."""
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
    ram_parts: dict[str, int] = field(default_factory=dict)
    """For a stage whose steps run one after the other, each step's host RAM (`ram_bytes` is the largest)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "ram_bytes": self.ram_bytes,
            "gpu_bytes": self.gpu_bytes,
            "disk_bytes": self.disk_bytes,
            "placement": self.placement.as_request(),
            "note": self.note,
            "refusal": self.refusal,
            "ram_parts": self.ram_parts,
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


def plan_resources(
    release: ReleaseSpec, shape: ModelShape, machine: Machine, *, first_of_base: bool = True
) -> ResourcePlan:
    """Every stage's needs for `release` of a model of `shape`, placed on `machine` (or refused there).

    `first_of_base`: the first variant of its base in the run, which measures the base's perplexity and starts
    the fork server; the later ones reuse both.
    """
    size = checkpoint_size(
        shape,
        release.scheme_info,
        group_size=release.effective_group_size,
        targets=release.targets,
        ignore=release.ignore,
    )
    estimator = _Estimator(release, shape, size, machine, first_of_base)
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
    """A plan that checks nothing. On a machine with GPUs the stages still go to them, each with every GPU's
    usable memory (quantize: GPU 0; vLLM: GPU 0 alone), so an unknown shape never moves a release to the CPU."""
    return ResourcePlan(
        release.variant,
        release.repo_id,
        machine.describe(),
        estimable=False,
        reason=reason,
        stages=_unsized_gpu_stages(release, machine.gpus),
    )


def _unsized_gpu_stages(release: ReleaseSpec, gpus: tuple[Gpu, ...]) -> tuple[StagePlan, ...]:
    if not gpus:
        return ()
    note = "size unknown: every GPU's usable memory, nothing checked"
    usable = {gpu.index: _usable_gpu_bytes(gpu) for gpu in gpus}
    first = gpus[0]
    stages = [StagePlan("quantize", 0, 0, 0, Placement({first.index: usable[first.index]}), note=note)]
    stages += [
        StagePlan(stage, 0, 0, 0, Placement(dict(usable)), note=note)
        for stage in ("verify", "evaluate", "card", "publish")
        if stage != "evaluate" or release.evaluation is not None
    ]
    if release.verify.vllm != "off":
        vllm_budget = int(first.memory_bytes * VLLM_GPU_MEMORY_UTILIZATION)
        stages.append(StagePlan("vllm", 0, 0, 0, Placement({first.index: vllm_budget}), note=note))
    return tuple(stages)


def _usable_gpu_bytes(gpu: Gpu) -> int:
    return int(gpu.memory_bytes * (1 - GPU_HEADROOM)) - CUDA_CONTEXT_BYTES


class _Estimator:
    def __init__(
        self, release: ReleaseSpec, shape: ModelShape, size: CheckpointSize, machine: Machine, first_of_base: bool
    ) -> None:
        self.release, self.shape, self.size, self.machine = release, shape, size, machine
        self.first_of_base = first_of_base
        # The fork server starts with the first stage that loads a model and serves the rest of the run.
        self.tree = HUBPUB_RSS + FORK_SERVER_RSS
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

    def _cpu_load(self, parameters_bytes: int, file_bytes: int, *, decompressed: bool) -> int:
        """Host RAM of hubpub's transformers load on the CPU, at the checkpoint's dtype. The weights of a plain
        checkpoint are the memory-mapped file's pages themselves; a compressed one is read into memory beside its
        mapped file and decompressed into a third copy. Each module's weights are widened to float32 for its
        forward (hubpub.stages._float32) into buffers reused from module to module, one per size."""
        shape = self.shape
        sizes = {linear.out_features * linear.in_features for linear in shape.layer_linears(0)}
        widened = 4 * (sum(sizes) + shape.vocab_size * shape.hidden_size) if shape.dtype_bytes < 4 else 0
        held = parameters_bytes + 2 * file_bytes if decompressed else max(parameters_bytes, file_bytes)
        return held + widened

    def _float32_load(self, parameters_bytes: int, file_bytes: int) -> int:
        """The same for lm-eval's load on the CPU, a float32 copy (4 bytes a parameter) beside the file's pages."""
        return parameters_bytes * 4 // self.shape.dtype_bytes + file_bytes

    def _resident(self, *loads: int) -> int:
        """Models loaded one after the other in one process: the largest when their tensors go back to the
        system once freed, all of them when they stay in the heap."""
        largest_tensor = max(linear.out_features * linear.in_features for linear in self.shape.layer_linears(0)) * 4
        return max(loads) if largest_tensor >= HEAP_RETURN_BYTES else sum(loads)

    def _logits_bytes(self) -> int:
        return 2 * EVAL_TOKENS * self.shape.vocab_size * 4

    def resolve(self) -> StagePlan:
        source = self.release.source
        if source is not None and source.gguf_file and self.first_of_base:
            ram = self.tree + int(self.base * (1 + GGUF_WORKING_COPIES))
            return StagePlan("resolve", ram, 0, self.base_disk, note="convert the GGUF to bfloat16 safetensors")
        where = "read the local folder" if source is not None else "download the base from the Hub"
        if source is not None and source.gguf_file:
            where = "the GGUF's conversion, made by an earlier variant"
        return StagePlan("resolve", self._before_children(), 0, self.base_disk, note=where)

    def preflight(self) -> StagePlan:
        ram = self._before_children()
        return StagePlan("preflight", ram, 0, self.base_disk, note="config and safetensors headers only")

    def _before_children(self) -> int:
        """The run so far: hubpub alone, unless a GGUF conversion or an earlier variant started the fork server."""
        source = self.release.source
        converted = source is not None and source.gguf_file is not None
        return self.tree if converted or not self.first_of_base else HUBPUB_RSS

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
        work = QUANTIZE_WORK + int(self.base * QUANTIZE_WORK_SHARE)
        awq = self._awq_cache(tokens, samples)
        ram = self.tree + self.base + self.checkpoint + work + cached_activations
        disk = self.base_disk + self.checkpoint
        if not self.gpus:
            return StagePlan("quantize", ram + awq, 0, disk, note="on the CPU, in the base dtype")
        layer = shape.layer_parameters * shape.dtype_bytes
        working = max(tokens, 1) * (4 * shape.hidden_size + 3 * shape.intermediate_size) * shape.dtype_bytes
        held = awq
        if MODIFIER_FOR_ALGORITHM[self.release.algorithm] == "GPTQModifier":
            held = sum(linear.in_features**2 * 4 for linear in shape.layer_linears(0))  # the Hessians
            largest = max(linear.out_features * linear.in_features for linear in shape.layer_linears(0))
            held += largest * 4  # the weight being solved, in float32
        need = CUDA_CONTEXT_BYTES + layer + working + held
        note = "the model on the CPU; one decoder layer at a time on GPU 0"
        return StagePlan("quantize", ram, need, disk, self._one_gpu(need), note=note)

    def _awq_cache(self, tokens: int, samples: int) -> int:
        """What AWQModifier holds for the decoder layer it smooths, on the device that runs the layer (it offloads
        nothing unless told to): every sample's inputs to each mapping's parent module (the attention block,
        o_proj, the MLP, down_proj), the parent's outputs before and during the grid search, and a copy of the
        balanced weights. SmoothQuant keeps only two per-channel vectors per mapping, so it adds nothing here."""
        if self.release.algorithm != "awq":
            return 0
        shape = self.shape
        attention = shape.num_heads * shape.head_dim
        rotary = 2 * shape.head_dim  # the position embeddings (cos, sin) passed to the attention block
        inputs = 2 * shape.hidden_size + rotary + attention + shape.intermediate_size
        outputs = 2 * shape.hidden_size
        balanced = 2 * shape.intermediate_size * shape.hidden_size  # gate_proj and up_proj, the largest mapping
        return (samples * tokens * (inputs + outputs) + balanced) * shape.dtype_bytes

    def _one_gpu(self, need: int) -> Placement:
        gpu = self.gpus[0]
        usable = _usable_gpu_bytes(gpu)
        return Placement(gpu_budgets={gpu.index: usable}) if need <= usable else CPU

    def _transformers_load(
        self, stage: str, weights: int, note: str, *, base_too: bool = False, float32_copy: bool = False
    ) -> StagePlan:
        """A transformers load in a forked child of `weights` bytes (base dtype), spread over the GPUs or on the CPU
        with float32 arithmetic (over a float32 copy when `float32_copy`, as lm-eval loads); with `base_too` the
        base is loaded first in the same process."""
        disk = self.base_disk + self.checkpoint
        if not self.gpus:
            if float32_copy:
                loads = [self._float32_load(self.decompressed, self.checkpoint)]
                base = self._float32_load(self.base, self.base)
                how = "float32 copies on the CPU"
            else:
                loads = [self._cpu_load(self.decompressed, self.checkpoint, decompressed=True)]
                base = self._cpu_load(self.base, self.base, decompressed=False)
                how = "float32 arithmetic on the CPU"
            if base_too:
                loads.append(base)
            ram = self.tree + self._resident(*loads) + self._logits_bytes()
            return StagePlan(stage, ram, 0, disk, note=f"{note}, {how}")
        need = weights + self._logits_bytes() // 2
        placement, offload = self._spread(need)
        ram = self.tree + min(LOAD_SHARD_BYTES, weights) + offload
        where = f"a device map from its {self.decompressed / GB:.1f} GB decompressed"
        return StagePlan(stage, ram, need, disk, placement, note=f"{note}, {where}, over the GPUs")

    def _modules(self, need: int) -> ModelSizes:
        """The decompressed model's modules as the stages' children place them (hubpub.device_map), in the order
        the model runs them; the head's logits and activations (`need` beyond the weights) come last."""
        shape, dtype = self.shape, self.shape.dtype_bytes
        # The scales and zero points stay beside the decompressed weights.
        per_layer = (self.size.scales + self.size.zero_points) // shape.num_layers
        units = [("model.embed_tokens", shape.embedding_parameters * dtype)]
        units += [
            (f"model.layers.{index}", shape.layer_parameters * dtype + per_layer) for index in range(shape.num_layers)
        ]
        units += [("model.norm", shape.hidden_size * dtype), ("lm_head", shape.lm_head_parameters * dtype)]
        units.append(("logits", max(need - self.decompressed, 0)))  # on the last device, beside the head
        tied = {"lm_head": "model.embed_tokens"} if shape.tied_embeddings else {}
        return ModelSizes(
            self.release.repo_id,
            tuple(unit for unit in units if unit[0] not in tied),
            tied,
            self.checkpoint,
            shape.dtype,
            compressed=True,
        )

    def _spread(self, need: int) -> tuple[Placement, int]:
        """The fewest GPUs whose usable memory holds the decompressed model's modules, filled in order as the
        children's device map fills them; else all of them plus CPU offload when the runner allows it (the
        placement is the CPU when neither fits)."""
        modules = self._modules(need)
        for count in range(1, len(self.gpus) + 1):
            budgets = {gpu.index: _usable_gpu_bytes(gpu) for gpu in self.gpus[:count]}
            try:
                modules.device_map(budgets)
            except PlacementError:
                continue
            return Placement(gpu_budgets=budgets), 0
        if not self.machine.cpu_offload:
            return CPU, 0
        every = {gpu.index: _usable_gpu_bytes(gpu) for gpu in self.gpus}
        placed = modules.device_map(every, ("cpu", modules.loaded_bytes))
        spill = sum(size for name, size in modules.units if placed[name] == "cpu")
        return Placement(every, cpu_offload_bytes=spill), spill

    def verify(self) -> StagePlan:
        # The base (its perplexity, once per base in a run), then the quantized checkpoint decompressed.
        weights = max(self.base, self.decompressed)
        first = self.first_of_base
        note = "base then quantized" if first else "quantized (the base's perplexity is measured once)"
        return self._transformers_load("verify", weights, note, base_too=first)

    def evaluate(self) -> StagePlan:
        assert self.release.evaluation is not None
        weights = max(self.base, self.decompressed)
        # lm-eval's peak was measured at both models' size even when the base's results came from the cache.
        plan = self._transformers_load(
            "evaluate", weights, "lm-eval, base then quantized", base_too=True, float32_copy=True
        )
        return _with(plan, ram=plan.ram_bytes + LM_EVAL_WORK)

    def vllm(self) -> StagePlan:
        disk = self.base_disk + self.checkpoint
        shape = self.shape
        kv = 2 * shape.num_layers * shape.num_kv_heads * shape.head_dim * shape.dtype_bytes * VLLM_MAX_MODEL_LEN
        if not self.gpus:
            ram = self.tree + VLLM_RSS + self.checkpoint + VLLM_CPU_KV_BYTES
            return StagePlan("vllm", ram, 0, disk, note="vLLM's CPU build, 1 GiB of KV cache")
        ram = self.tree + VLLM_RSS + min(LOAD_SHARD_BYTES, self.checkpoint)
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
        """The Transformers snippet, then the vLLM snippet when vLLM loaded the checkpoint: each in a new
        interpreter, as a user runs them; the stage needs the larger."""
        load = self._transformers_load("card", self.decompressed, "the card's Transformers snippet")
        if self.gpus:
            snippet = self.tree + TORCH_RSS + min(LOAD_SHARD_BYTES, self.decompressed)
        else:
            snippet = self.tree + TORCH_RSS + self.decompressed + self.checkpoint
        parts = {"transformers snippet": snippet}
        gpu = load.gpu_bytes
        if self.release.verify.vllm != "off":
            served = self.vllm()
            parts["vllm snippet"] = served.ram_bytes - VLLM_RSS + VLLM_COMPILED_RSS
            gpu = max(gpu, served.gpu_bytes)
        return StagePlan(
            "card",
            max(parts.values()),
            gpu,
            load.disk_bytes,
            load.placement,
            note="the card's snippets, one after the other",
            ram_parts=parts,
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
            per_gpu = min(_usable_gpu_bytes(gpu) for gpu in gpus)
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
