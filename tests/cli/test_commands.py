from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hubpub.cli import cli
from hubpub.spec import spec_json_schema
from tests.conftest import DEMO_SPEC, PRODUCTION_SPEC, REPO_ROOT, run_cli

COMMITTED_SCHEMA = REPO_ROOT / "docs" / "release-spec.schema.json"


def test_validate_accepts_both_model_specs(demo_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["validate", str(PRODUCTION_SPEC), str(DEMO_SPEC)], capsys)
    assert (code, err) == (0, "")
    assert f"ok {PRODUCTION_SPEC}: family smollm2-1.7b-instruct with 2 variants (W4A16, W8A8)" in out
    assert f"ok {DEMO_SPEC}: family smollm2-135m-demo with 2 variants (W4A16, W8A8)" in out


def test_validate_exits_2_when_any_file_is_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: org/base\nrepo_id: org/x\nscheme: W4A16\ngroup_size: -1\n")
    code, _, err = run_cli(["validate", str(PRODUCTION_SPEC), str(bad)], capsys)
    assert code == 2
    assert err.strip() == f"error: {bad}:4:13: group_size: Input should be greater than 0 (got -1)"


def test_spec_errors_become_github_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: org/base\nrepo_id: org/x\nschema: W4A16\n")
    code, out, _ = run_cli(["validate", str(bad)], capsys)
    assert code == 2
    assert (
        f"::error file={bad},line=3,col=1,title=hubpub spec::schema: unknown key 'schema'; did you mean 'scheme'?"
        in out
    )


def test_plan_json_shows_the_effective_demo_release(demo_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["plan", "--json", str(DEMO_SPEC)], capsys)
    assert code == 0
    w4, w8 = json.loads(out)
    assert (w4["repo_id"], w4["scheme"], w4["algorithm"], w4["group_size"]) == (
        "demo/SmolLM2-135M-Instruct-W4A16",
        "W4A16",
        "rtn",
        64,
    )
    modifier = w4["recipe"]["quant_stage"]["quant_modifiers"]["QuantizationModifier"]
    assert modifier["ignore"] == ["lm_head"]
    assert modifier["config_groups"]["group_0"]["weights"]["group_size"] == 64
    assert w8["recipe"]["quant_stage"]["quant_modifiers"]["QuantizationModifier"]["config_groups"]["group_0"][
        "input_activations"
    ] == {"num_bits": 8, "type": "int", "strategy": "token", "symmetric": True, "dynamic": True}
    assert w4["stages"] == ["resolve", "preflight", "quantize", "verify", "vllm", "evaluate", "card", "publish"]
    assert w4["downloads"] == [] and w8["downloads"] == []
    assert w4["calibration"]["used"] is False
    assert w4["hub_tag"] == "v0.1.0"


def test_plan_lists_what_the_production_family_downloads(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["plan", "--json", "--variant", "W8A8", str(PRODUCTION_SPEC)], capsys)
    assert code == 0
    (w8,) = json.loads(out)
    assert w8["downloads"][:2] == [
        "model HuggingFaceTB/SmolLM2-1.7B-Instruct at main (weights, config, tokenizer)",
        "dataset HuggingFaceH4/ultrachat_200k split train_sft (calibration)",
    ]
    assert "lm-eval task hellaswag (its dataset, for evaluation)" in w8["downloads"]
    assert "GPTQModifier" in w8["recipe"]["quant_stage"]["quant_modifiers"]


def test_plan_text_output(demo_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["plan", str(DEMO_SPEC), "--variant", "W4A16"], capsys)
    assert code == 0
    assert "demo/SmolLM2-135M-Instruct-W4A16" in out
    assert "W4A16 (rtn, group size 64)" in out
    assert "downloads    nothing" in out
    assert "resolve → preflight → quantize" in out


def test_plan_unknown_variant_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["plan", str(PRODUCTION_SPEC), "--variant", "W3A3"], capsys)
    assert code == 2
    assert "no variant named 'W3A3' (have: W4A16, W8A8)" in err


def test_committed_schema_is_in_sync() -> None:
    committed = json.loads(COMMITTED_SCHEMA.read_text(encoding="utf-8"))
    assert committed == spec_json_schema(), "run `make schema` to refresh docs/release-spec.schema.json"


def test_schema_command_prints_the_schema() -> None:
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["additionalProperties"] is False
    assert {"base_model", "repo_id", "scheme", "variants", "calibration"} <= set(schema["properties"])


def test_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "2  invalid spec or command-line usage" in result.output
    for command in ("validate", "plan", "schema"):
        assert command in result.output


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["validate"], capsys)
    assert code == 2
    assert "Missing argument" in err
