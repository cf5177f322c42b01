"""A compressed checkpoint is placed by its decompressed size: an explicit device map, loaded decompressing.

The checkpoint is real (the tiny Llama, quantized W4A16 by llm-compressor here); GPU indices in the budgets are
test doubles: the maps are computed, not loaded, except on the CPU, where the map spans the CPU and disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hubpub.device_map import ModelSizes, model_sizes, placement_kwargs
from hubpub.errors import CudaUnavailableError, PlacementError
from hubpub.placement import Placement
from hubpub.resources import Machine, plan_resources, shape_from_config
from hubpub.resources.runner import GB, Gpu
from hubpub.spec import ReleaseSpec
from hubpub.stages._evaluate_child import gpu_load_kwargs
from tests.conftest import run_cli
from tests.resources.shapes import LLAMA_3_1_70B
from tests.resources.test_plan_command import _spec

PROMPT = "What is the capital of France?"


@pytest.fixture(scope="module")
def compressed(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import yaml
    from llmcompressor import oneshot
    from llmcompressor.core import active_session
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-w4a16")
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype="auto")
    weights = {"num_bits": 4, "type": "int", "symmetric": True, "strategy": "group", "group_size": 64}
    modifier = {
        "targets": ["Linear"],
        "ignore": ["lm_head"],
        "config_groups": {"g": {"targets": ["Linear"], "weights": weights}},
    }
    oneshot(
        model=model, recipe=yaml.safe_dump({"quant_stage": {"quant_modifiers": {"QuantizationModifier": modifier}}})
    )
    model.save_pretrained(folder, save_compressed=True)
    active_session().reset()
    AutoTokenizer.from_pretrained(tiny_llama).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sizes(compressed: Path) -> ModelSizes:
    return model_sizes(compressed)


def _between(sizes: ModelSizes) -> int:
    """A budget that holds the packed checkpoint but not the decompressed model."""
    budget = (sizes.packed_bytes + sizes.loaded_bytes) // 2
    assert sizes.packed_bytes < budget < sizes.loaded_bytes
    return budget


def _held_bytes(model: Any) -> int:
    tensors = {id(tensor): tensor for tensor in [*model.parameters(), *model.buffers()]}
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())


def _answer(model: Any, folder: Path) -> str:
    import torch
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=10, do_sample=False)
    return str(tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True))


def test_sizes_are_the_decompressed_model_as_transformers_holds_it(compressed: Path, sizes: ModelSizes) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(compressed, dtype="auto")
    packed = _held_bytes(model)
    _answer(model, compressed)  # the first forward pass decompresses it in place
    assert sizes.compressed and sizes.dtype == "float32"
    assert sizes.loaded_bytes == _held_bytes(model)
    assert packed < sizes.loaded_bytes / 3 and sizes.packed_bytes < sizes.loaded_bytes / 3
    assert [name for name, _ in sizes.units] == [
        "model.embed_tokens",
        "model.layers.0",
        "model.layers.1",
        "model.norm",
        "model.rotary_emb",
    ]
    assert dict(sizes.tied) == {"lm_head": "model.embed_tokens"}


def test_auto_puts_all_on_the_first_gpu_by_packed_size_the_map_spills_by_decompressed(
    compressed: Path, sizes: ModelSizes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers.modeling_utils
    from transformers import AutoModelForCausalLM

    budget = _between(sizes)
    computed: dict[str, Any] = {}
    real = transformers.modeling_utils._get_device_map

    class Computed(Exception):
        """Stops from_pretrained once its map is known: this machine has no GPU 0 to load onto."""

    def record(*args: Any, **kwargs: Any) -> Any:
        computed["map"] = real(*args, **kwargs)
        raise Computed

    monkeypatch.setattr(transformers.modeling_utils, "_get_device_map", record)
    with pytest.raises(Computed):
        AutoModelForCausalLM.from_pretrained(
            compressed, dtype="auto", device_map="auto", max_memory={0: budget, "cpu": 10 * budget}
        )
    assert dict(computed["map"]) == {"": 0}

    spilled = sizes.device_map({0: budget}, ("cpu", 10 * budget))
    assert set(spilled.values()) == {0, "cpu"} and spilled["lm_head"] == spilled["model.embed_tokens"]
    on_gpu = sum(size for name, size in sizes.units if spilled[name] == 0)
    assert on_gpu <= budget - max(size for name, size in sizes.units if spilled[name] == "cpu")

    spread = sizes.device_map({0: budget, 1: budget})
    assert spread == {
        "model.embed_tokens": 0,
        "model.layers.0": 0,
        "model.layers.1": 1,
        "model.norm": 1,
        "model.rotary_emb": 1,
        "lm_head": 0,
    }


def test_a_model_that_does_not_fit_is_refused_naming_both_sizes(compressed: Path, sizes: ModelSizes) -> None:
    with pytest.raises(PlacementError) as refused:
        sizes.device_map({0: _between(sizes)})
    message = str(refused.value)
    assert f"{sizes.packed_bytes / 1e3:.2f} kB of packed weights" in message
    assert f"decompresses to {sizes.loaded_bytes / 1e3:.2f} kB of float32" in message
    assert "no CPU offload" in message and "from model.layers.1 on" in message and "cpu_offload" in message
    assert refused.value.exit_code == 2


def test_the_explicit_map_loads_decompressed_on_the_cpu_and_disk_and_generates(
    compressed: Path, sizes: ModelSizes, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    device_map = sizes.device_map({"cpu": _between(sizes)}, ("disk", 10 * sizes.loaded_bytes))
    assert set(device_map.values()) == {"cpu", "disk"}
    model = AutoModelForCausalLM.from_pretrained(
        compressed, dtype="auto", **sizes.load_kwargs(device_map, offload_folder=tmp_path / "offload")
    )
    on_disk = next(name for name, device in device_map.items() if device == "disk" and name.startswith("model.layers"))
    query = model.get_submodule(on_disk).self_attn.q_proj
    assert type(query._parameters).__name__ == "DiskCache"
    assert query.weight.dtype.is_floating_point and tuple(query.weight.shape) == (64, 64)
    assert "weight_packed" not in dict(query.named_parameters())
    assert "Paris" in _answer(model, compressed)


def test_compressed_tensors_lazy_decompression_fails_once_a_model_is_dispatched(
    compressed: Path, sizes: ModelSizes, tmp_path: Path
) -> None:
    """Why the map is loaded decompressing: the default (dequantize=False) decompresses at the first forward pass,
    which takes accelerate's hooks off the model from inside the call that runs them."""
    from transformers import AutoModelForCausalLM

    device_map = sizes.device_map({"cpu": _between(sizes)}, ("disk", 10 * sizes.loaded_bytes))
    model = AutoModelForCausalLM.from_pretrained(
        compressed, dtype="auto", device_map=device_map, offload_folder=str(tmp_path / "offload")
    )
    with pytest.raises(AttributeError, match="_hf_hook"):
        _answer(model, compressed)


def test_stage_children_place_gpu_loads_by_the_decompressed_map(compressed: Path, sizes: ModelSizes) -> None:
    budget = _between(sizes)
    placement = Placement(gpu_budgets={0: budget, 1: budget})
    kwargs = placement_kwargs(compressed, placement)
    assert kwargs["device_map"] == sizes.device_map({0: budget, 1: budget})
    assert kwargs["quantization_config"].dequantize is True
    assert gpu_load_kwargs(placement, str(compressed), device_count=2) == {"dtype": "auto", **kwargs}
    with pytest.raises(CudaUnavailableError, match=r"the placement names GPUs \[1\]; torch sees 1"):
        gpu_load_kwargs(placement, str(compressed), device_count=1)
    with pytest.raises(PlacementError):
        placement_kwargs(compressed, Placement(gpu_budgets={0: budget}))
    offloaded = placement_kwargs(compressed, Placement(gpu_budgets={0: budget}, cpu_offload_bytes=10 * budget))
    assert set(offloaded["device_map"].values()) == {0, "cpu"}


def test_a_plain_checkpoint_loads_without_a_quantization_config(tiny_llama: Path) -> None:
    plain = model_sizes(tiny_llama)
    assert not plain.compressed and plain.packed_bytes < plain.loaded_bytes + 1024
    assert "quantization_config" not in placement_kwargs(tiny_llama, Placement(gpu_budgets={0: GB}))


def test_the_plan_places_by_the_same_modules_and_says_the_decompressed_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = ReleaseSpec.model_validate({"base_model": "meta/llama", "repo_id": "t/l-w4a16", "scheme": "W4A16"})
    shape = shape_from_config(LLAMA_3_1_70B)
    # 39.5 GB packed fits one 80 GB GPU; 141 GB decompressed needs two, or the CPU beside one.
    one = plan_resources(release, shape, Machine((Gpu(0, "sim", 80 * GB),), None, None))
    assert one.checkpoint_bytes < 72 * GB < one.decompressed_bytes
    verify = next(stage for stage in one.stages if stage.stage == "verify")
    assert verify.refusal is not None and "GPU memory" in verify.refusal
    assert f"a device map from its {one.decompressed_bytes / GB:.1f} GB decompressed" in verify.note
    offload = plan_resources(release, shape, Machine((Gpu(0, "sim", 80 * GB),), None, None, cpu_offload=True))
    spilled = offload.placement("verify")
    assert 60 * GB < spilled.cpu_offload_bytes < one.decompressed_bytes - 60 * GB
    two = plan_resources(release, shape, Machine(tuple(Gpu(i, "sim", 80 * GB) for i in range(2)), None, None))
    assert list(two.placement("verify").gpu_budgets) == [0, 1]

    code, out, err = run_cli(["plan", str(_spec(tmp_path, ""))], capsys)
    assert code == 0, err
    assert f"{one.decompressed_bytes / 1e9:.2f} GB decompressed" in " ".join(out.split())


def test_lm_eval_over_the_model_loaded_by_the_map_measures_what_its_own_load_does(
    compressed: Path, sizes: ModelSizes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evaluate child's GPU path (lm-eval handed the loaded model) run on the CPU: the GPU and CUDA are test
    doubles, the map is the decompressed one over the CPU; lm-eval's numbers equal its own load's."""
    import torch

    from hubpub.stages import _evaluate_child
    from tests.conftest import REPO_ROOT

    request = {
        "models": {"quantized": str(compressed)},
        "tasks": ["demo_capitals"],
        "num_fewshot": 0,
        "limit": 4,
        "batch_size": 2,
        "seed": 1234,
        "include_path": [str(REPO_ROOT / "model_specs" / "demo" / "tasks")],
        "bootstrap_iters": 0,
    }
    on_cpu = _evaluate_child.main({**request, "placement": None})
    loaded: list[dict[str, Any]] = []

    def cpu_map(folder: Path, placement: Placement) -> dict[str, Any]:
        kwargs = model_sizes(folder).load_kwargs(model_sizes(folder).device_map({"cpu": 10 * sizes.loaded_bytes}))
        loaded.append(kwargs)
        return kwargs

    monkeypatch.setattr(_evaluate_child, "cuda_problem", lambda: None)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(_evaluate_child, "placement_kwargs", cpu_map)
    on_gpu = _evaluate_child.main({**request, "placement": Placement(gpu_budgets={0: GB}).as_request()})
    assert [kwargs["quantization_config"].dequantize for kwargs in loaded] == [True]
    cpu_results = on_cpu["results"]["quantized"]["results"]["demo_capitals"]
    gpu_results = on_gpu["results"]["quantized"]["results"]["demo_capitals"]
    assert gpu_results["acc,none"] == cpu_results["acc,none"]
    assert gpu_results["acc_norm,none"] == cpu_results["acc_norm,none"]
