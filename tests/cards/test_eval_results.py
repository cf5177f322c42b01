"""`.eval_results/*.yaml`: written for tasks that report to a registered Hub benchmark, read back by huggingface_hub."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml
from huggingface_hub import EvalResultEntry, HfApi, parse_eval_result_entries

from hubpub.evalresults import FOLDER, benchmark_results, benchmarks
from hubpub.hub import HubServer, Identity
from hubpub.hubclient import HubTarget
from hubpub.manifest import Manifest, StageResult
from hubpub.pipeline import _stage_folder
from hubpub.spec import load_spec
from hubpub.stages import card
from hubpub.stages import publish as publish_stage

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "hf_eval_results_token_0123456789"
SPEC = """family: smollm2-135m-demo
base_model: HuggingFaceTB/SmolLM2-135M-Instruct
license: apache-2.0
version: 0.1.0
calibration: {dataset: demo/calibration-text}
variants:
  - {name: W4A16, scheme: W4A16, group_size: 64, repo_id: demo/SmolLM2-135M-Instruct-W4A16}
  - {name: W8A8, scheme: W8A8, repo_id: demo/SmolLM2-135M-Instruct-W8A8}
"""


def demo(variant: str) -> Manifest:
    return Manifest.model_validate_json((FIXTURES / f"demo-{variant}.json").read_text(encoding="utf-8"))


def gsm8k_evaluated(ci_run_url: str | None = None) -> Manifest:
    """The demo W4A16 manifest as if its evaluation had run gsm8k (both of lm-eval's filters) and a local task."""
    manifest = demo("W4A16")
    evaluated = manifest.stages["evaluate"]
    rows = [
        {"task": "gsm8k", "metric": "exact_match", "filter": "strict-match", "base": 0.41, "quantized": 0.39},
        {"task": "gsm8k", "metric": "exact_match", "filter": "flexible-extract", "base": 0.45, "quantized": 0.44},
        evaluated.metrics["rows"][0],
    ]
    metrics = {**evaluated.metrics, "rows": rows, "finished_at": "2026-03-01T12:00:00Z"}
    stages: dict[str, StageResult] = {**manifest.stages, "evaluate": evaluated.model_copy(update={"metrics": metrics})}
    return manifest.model_copy(update={"stages": stages, "ci_run_url": ci_run_url})


def test_a_mapped_task_writes_a_file_that_huggingface_hub_reads_back_equal() -> None:
    manifest = gsm8k_evaluated()
    written = benchmark_results(manifest, tag="v0.1.0")
    assert list(written.files) == [f"{FOLDER}/gsm8k.yaml"]
    local_task = manifest.stages["evaluate"].metrics["rows"][2]["task"]
    assert local_task in written.skipped

    parsed = parse_eval_result_entries(yaml.safe_load(written.files[f"{FOLDER}/gsm8k.yaml"]))

    gsm8k = benchmarks()["gsm8k"]
    settings = manifest.stages["evaluate"].metrics["settings"]
    assert parsed == [
        EvalResultEntry(
            dataset_id=gsm8k.dataset,
            task_id=gsm8k.task_id,
            value=0.39,
            date="2026-03-01T12:00:00Z",
            source_url=f"https://huggingface.co/{manifest.repo_id}/blob/v0.1.0/hubpub-manifest.json",
            source_name=f"hubpub {manifest.hubpub_version}",
            notes=f"lm-evaluation-harness {settings['versions']['lm-eval']}, {settings['num_fewshot']}-shot,"
            f" first {settings['limit']} examples, exact_match (strict-match); the quantized checkpoint of this repo",
        )
    ]
    assert gsm8k.dataset == "openai/gsm8k"
    from_ci = benchmark_results(gsm8k_evaluated("https://github.com/o/r/actions/runs/7"), tag=None)
    (entry,) = parse_eval_result_entries(yaml.safe_load(from_ci.files[f"{FOLDER}/gsm8k.yaml"]))
    assert entry.source_url == "https://github.com/o/r/actions/runs/7"


def test_every_mapped_benchmark_is_a_hub_dataset_id_with_a_task_id() -> None:
    for task, benchmark in benchmarks().items():
        namespace, _, name = benchmark.dataset.partition("/")
        assert namespace and name and "/" not in name, task
        assert benchmark.task_id and benchmark.metric, task


def test_the_demo_local_tasks_write_none_and_the_log_says_why(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = tmp_path / "smollm2-135m.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    releases = load_spec(spec).releases
    family = [demo("W4A16"), demo("W8A8")]
    with caplog.at_level(logging.INFO, logger="hubpub"):
        rendered = card.run(
            releases[0],
            family[0],
            family,
            base_bytes=family[0].stages["preflight"].metrics["checkpoint_bytes"],
            base_license=None,
            siblings=releases,
        )
    assert rendered.eval_results == {}
    assert "model-index" in rendered.metadata
    tasks = {row["task"] for row in family[0].stages["evaluate"].metrics["rows"]}
    for task in tasks:
        assert any(
            task in record.getMessage() and "not a registered Hub benchmark" in record.getMessage()
            for record in caplog.records
        ), task


def test_the_files_are_staged_and_published_in_the_release_commit(tmp_path: Path) -> None:
    manifest = gsm8k_evaluated()
    checkpoint, card_dir = tmp_path / "checkpoint", tmp_path / "card"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}", encoding="utf-8")
    (card_dir / FOLDER).mkdir(parents=True)
    (card_dir / "README.md").write_text("---\nlicense: apache-2.0\n---\n# card\n", encoding="utf-8")
    files = benchmark_results(manifest, tag=None).files
    for path, text in files.items():
        (card_dir / path).write_text(text, encoding="utf-8")
    staged = _stage_folder(tmp_path / "release", checkpoint, card_dir)
    manifest.write(staged)

    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="demo")}) as hub:
        target = HubTarget("test", hub.url, TOKEN)
        result = publish_stage.run(staged, target, private=False, tag=None, roundtrip=False)
        client = HfApi(endpoint=hub.url, token=TOKEN)
        commits = client.list_repo_commits(manifest.repo_id)
        assert commits[0].commit_id == result.commit and len(commits) == 2
        path = client.hf_hub_download(manifest.repo_id, f"{FOLDER}/gsm8k.yaml", cache_dir=tmp_path / "cache")
    assert Path(path).read_text(encoding="utf-8") == files[f"{FOLDER}/gsm8k.yaml"]
    assert parse_eval_result_entries(yaml.safe_load(Path(path).read_text(encoding="utf-8")))[0].value == 0.39
