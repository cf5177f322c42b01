"""SmoothQuant's and AWQ's layer mappings: the data read from llm-compressor, and the preflight's refusal of an
architecture that has none (a real release of a tiny random OPT stops at preflight with exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import mappings
from hubpub.mappings import ARCHITECTURES, DEFAULTS, LLMCOMPRESSOR_VERSION, mapping_problem
from tests.conftest import REPO_ROOT, run_cli, write_spec

CALIBRATION = REPO_ROOT / "model_specs" / "demo" / "calibration.jsonl"
LLAMA_MODULES = [
    f"model.layers.0.{leaf}"
    for leaf in (
        "input_layernorm",
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "post_attention_layernorm",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    )
]
OPT_MODULES = [
    f"model.decoder.layers.0.{leaf}"
    for leaf in ("self_attn_layer_norm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "fc1", "fc2")
]


def test_the_data_is_the_installed_llm_compressors() -> None:
    import llmcompressor
    from llmcompressor.modifiers.transform.awq.dynamic_mappings import AWQ_DYNAMIC_MAPPING_REGISTRY
    from llmcompressor.modifiers.transform.awq.mappings import AWQ_MAPPING_REGISTRY, default_mappings
    from llmcompressor.modifiers.transform.smoothquant.dynamic_mappings import SMOOTHQUANT_DYNAMIC_MAPPING_REGISTRY
    from llmcompressor.modifiers.transform.smoothquant.utils import DEFAULT_SMOOTHQUANT_MAPPINGS, MAPPINGS_REGISTRY

    assert llmcompressor.__version__ == LLMCOMPRESSOR_VERSION
    assert ARCHITECTURES["awq"] == set(AWQ_MAPPING_REGISTRY) | set(AWQ_DYNAMIC_MAPPING_REGISTRY)
    assert ARCHITECTURES["smoothquant+gptq"] == set(MAPPINGS_REGISTRY) | set(SMOOTHQUANT_DYNAMIC_MAPPING_REGISTRY)
    assert [(m.smooth, m.balance) for m in DEFAULTS["awq"]] == [
        (m.smooth_layer, tuple(m.balance_layers)) for m in default_mappings
    ]
    assert [(m.smooth, m.balance) for m in DEFAULTS["smoothquant+gptq"]] == [
        (m.smooth_layers, tuple(m.balance_layers)) for m in DEFAULT_SMOOTHQUANT_MAPPINGS
    ]


@pytest.mark.parametrize("algorithm", ["awq", "smoothquant+gptq"])
def test_an_architecture_with_mappings_passes_whatever_its_names(algorithm: str) -> None:
    assert mapping_problem(algorithm, "LlamaForCausalLM", OPT_MODULES) is None


@pytest.mark.parametrize("algorithm", ["awq", "smoothquant+gptq"])
def test_an_unlisted_architecture_with_the_default_names_passes(algorithm: str) -> None:
    assert mapping_problem(algorithm, "MyLlamaLikeForCausalLM", LLAMA_MODULES) is None


def test_an_unlisted_architecture_missing_one_default_name_is_refused() -> None:
    without_norm = [name for name in LLAMA_MODULES if not name.endswith("post_attention_layernorm")]
    problem = mapping_problem("smoothquant+gptq", "MyLlamaLikeForCausalLM", without_norm)
    assert problem is not None
    assert "no module matches .*post_attention_layernorm." in problem


@pytest.mark.parametrize("algorithm", ["rtn", "gptq"])
def test_algorithms_without_mappings_are_not_checked(algorithm: str) -> None:
    assert not mappings.needs_mappings(algorithm)
    assert mapping_problem(algorithm, "OPTForCausalLM", OPT_MODULES) is None


@pytest.fixture(scope="module")
def tiny_opt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_model import build_tiny_opt

    return build_tiny_opt(tmp_path_factory.mktemp("tiny-opt"))


@pytest.mark.parametrize(
    ("scheme", "algorithm", "label", "missing"),
    [
        (
            "W4A16",
            "awq",
            "AWQ",
            ".*input_layernorm$, .*o_proj$, .*post_attention_layernorm$, .*gate_proj$, .*up_proj$, .*down_proj$.",
        ),
        (
            "W8A8",
            "smoothquant+gptq",
            "SmoothQuant",
            ".*input_layernorm, .*post_attention_layernorm, .*gate_proj, .*up_proj.",
        ),
    ],
)
def test_release_of_an_architecture_without_mappings_exits_2_at_preflight(
    tiny_opt: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    scheme: str,
    algorithm: str,
    label: str,
    missing: str,
) -> None:
    extra = f"algorithm: {algorithm}\ncalibration: {{dataset: {CALIBRATION}, num_samples: 4, max_seq_length: 32}}\n"
    spec = write_spec(tmp_path, tiny_opt, extra, scheme=scheme)
    workdir = tmp_path / "w"

    code, _, err = run_cli(["release", str(spec), "--no-push", "--workdir", str(workdir)], capsys)

    assert code == 2, err
    assert "Traceback" not in err
    flat = " ".join(err.split())
    assert "preflight failed" in flat
    assert (
        f"algorithm {algorithm}: llm-compressor {LLMCOMPRESSOR_VERSION} has no {label} layer mappings for"
        " OPTForCausalLM" in flat
    )
    assert f"no module matches {missing}" in flat
    assert not list(workdir.rglob("quantize*")), "nothing may be quantized after a failed preflight"
