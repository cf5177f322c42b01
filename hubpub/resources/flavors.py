"""Hugging Face Jobs flavors as the machines the resource plan checks: GPUs, GPU memory, RAM, disk.

huggingface_hub 1.33 ships the flavors' names alone (`JobHardware`); their sizes come from the Hub at run time
(`list_jobs_hardware`, `GET /api/jobs/hardware`, `hf jobs hardware`), which the plan does not ask: it runs
before anything is submitted, on any Hub, offline against the embedded Hub. The table below is that data,
written down:

Source of every row: the Hub documentation's Jobs pricing tables ("CPU" and "GPU": CPU, Memory, GPU Memory,
Ephemeral Storage, Hourly Price), huggingface/hub-docs `docs/hub/jobs-pricing.md` at commit 242f4a1e
(2026-08-22), which names `GET /api/jobs/hardware` as the same list. The GPU model is the row's name
("Nvidia A10G - large" → A10G); the flavor name is the `JobHardware` value of that row.

What the table does not say, and what hubpub assumes:
- "GB" is read as decimal gigabytes (10^9 bytes), the unit of the spec's `runner:`. For GPU memory that is at or
  below what the cards report (an A100 80GB shows 81,920 MiB, 85.9 GB), so a plan that fits the table fits the card.
- "GPU Memory" is the flavor's total: each of its GPUs has that total divided by their count (4x L4: 96 GB, 4 × 24).
- "Memory" is the job's RAM limit (the container's cgroup limit, which hubpub reads inside the job).
- "Ephemeral Storage" is the job's whole disk: the image, hubpub's environment (torch's CUDA build with it) and
  the vLLM environment share it with the work folder, so the plan gives the work folder what is left after
  JOB_SOFTWARE_BYTES, and VLLM_ENVIRONMENT_BYTES more when the job builds the vLLM environment (estimates from the
  wheels' sizes on PyPI, unpacked; not measured on a job).
- The A100 row says 80 GB (the Spaces table of 2023 said 40 GB for the same name): the Jobs table is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubpub.errors import UsageError
from hubpub.resources.runner import GB, Gpu, Machine

JOB_SOFTWARE_BYTES = 15 * GB
"""The image (uv on Debian with Python 3.12) and hubpub's environment as `uvx` installs it: a CUDA build of torch
with NVIDIA's libraries (the torch 2.14 wheel alone is 555 MB packed), llm-compressor, lm-eval, transformers, and
uv's cache of them."""
VLLM_ENVIRONMENT_BYTES = 15 * GB
"""The vLLM GPU environment (hubpub/data/vllm-gpu-requirements.txt) and pip's cache of its wheels: vLLM 0.33.0
(336 MB packed), its own torch 2.14.0 (555 MB), cuDNN (553 MB), cuBLAS (423 MB), triton (248 MB), NCCL (216 MB),
FlashInfer (62 MB) and some 180 smaller wheels."""


@dataclass(frozen=True)
class Flavor:
    """One Jobs flavor's hardware, as the Hub documentation lists it (sizes in decimal GB)."""

    name: str
    vcpus: int
    ram_gb: float
    disk_gb: float
    """Ephemeral storage: the job's whole disk."""
    hourly_usd: float
    gpus: int = 0
    gpu_model: str | None = None
    gpu_memory_gb: float = 0.0
    """Memory of each GPU."""

    @property
    def has_gpu(self) -> bool:
        return self.gpus > 0

    def describe(self) -> str:
        gpus = f"{self.gpus} × {self.gpu_model} {self.gpu_memory_gb:g} GB" if self.gpus else "no GPU"
        return f"{gpus}, {self.vcpus} vCPU, {self.ram_gb:g} GB RAM, {self.disk_gb:g} GB disk"

    def machine(self, *, vllm_environment: bool = False, cpu_offload: bool = False) -> Machine:
        """The flavor as the plan's machine: its GPUs and RAM, and the disk its work folder gets."""
        software = JOB_SOFTWARE_BYTES + (VLLM_ENVIRONMENT_BYTES if vllm_environment else 0)
        memory = int(self.gpu_memory_gb * GB)
        return Machine(
            gpus=tuple(Gpu(index, f"NVIDIA {self.gpu_model}", memory) for index in range(self.gpus)),
            ram_bytes=int(self.ram_gb * GB),
            disk_bytes=max(int(self.disk_gb * GB) - software, 0),
            cpu_offload=cpu_offload,
            origin=f"Jobs flavor {self.name}",
        )


def _gpu(name: str, vcpus: int, ram: float, model: str, count: int, total: float, disk: float, usd: float) -> Flavor:
    return Flavor(name, vcpus, ram, disk, usd, gpus=count, gpu_model=model, gpu_memory_gb=total / count)


FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        # CPU table: CPU, Memory, Ephemeral Storage, Hourly Price
        Flavor("cpu-basic", 2, 16, 50, 0.01),
        Flavor("cpu-upgrade", 8, 32, 50, 0.03),
        Flavor("cpu-xl", 16, 124, 1000, 1.00),
        Flavor("cpu-performance", 32, 256, 1024, 1.90),
        # GPU table: CPU, Memory, model and count from the row's name, GPU Memory (total), Ephemeral Storage, Price
        _gpu("t4-small", 4, 15, "T4", 1, 16, 50, 0.40),
        _gpu("t4-medium", 8, 30, "T4", 1, 16, 100, 0.60),
        _gpu("l4x1", 8, 30, "L4", 1, 24, 400, 0.80),
        _gpu("l4x4", 48, 186, "L4", 4, 96, 3200, 3.80),
        _gpu("l40sx1", 8, 62, "L40S", 1, 48, 380, 1.80),
        _gpu("l40sx4", 48, 382, "L40S", 4, 192, 3200, 8.30),
        _gpu("l40sx8", 192, 1534, "L40S", 8, 384, 6500, 23.50),
        _gpu("a10g-small", 4, 15, "A10G", 1, 24, 110, 1.00),
        _gpu("a10g-large", 12, 46, "A10G", 1, 24, 200, 1.50),
        _gpu("a10g-largex2", 24, 92, "A10G", 2, 48, 1000, 3.00),
        _gpu("a10g-largex4", 48, 184, "A10G", 4, 96, 2000, 5.00),
        _gpu("a100-large", 12, 142, "A100", 1, 80, 1000, 2.50),
        _gpu("a100x4", 48, 568, "A100", 4, 320, 4000, 10.00),
        _gpu("a100x8", 96, 1136, "A100", 8, 640, 8000, 20.00),
        _gpu("h200", 23, 256, "H200", 1, 141, 3000, 5.00),
        _gpu("h200x2", 46, 512, "H200", 2, 282, 6000, 10.00),
        _gpu("h200x4", 92, 1024, "H200", 4, 564, 12000, 20.00),
        _gpu("h200x8", 184, 2048, "H200", 8, 1128, 24000, 40.00),
        _gpu("rtx-pro-6000", 23, 256, "RTX PRO 6000", 1, 96, 475, 2.75),
        _gpu("rtx-pro-6000x2", 46, 512, "RTX PRO 6000", 2, 192, 950, 5.50),
        _gpu("rtx-pro-6000x4", 92, 1024, "RTX PRO 6000", 4, 384, 1900, 11.00),
        _gpu("rtx-pro-6000x8", 184, 2048, "RTX PRO 6000", 8, 768, 3800, 22.00),
    )
}


def flavor_of(name: str) -> Flavor:
    """The hardware of Jobs flavor `name`; a UsageError for a flavor huggingface_hub knows and the table lacks."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise UsageError(
            f"hubpub does not know the sizes of the Jobs flavor '{name}' (newer than this hubpub): add its row to"
            " hubpub.resources.flavors.FLAVORS from `hf jobs hardware`, or choose another flavor"
        ) from None


def by_price() -> list[Flavor]:
    """Every flavor, cheapest first (the order in which a flavor that fits is suggested)."""
    return sorted(FLAVORS.values(), key=lambda item: (item.hourly_usd, item.gpus, item.name))
