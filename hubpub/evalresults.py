"""Results the Hub understands: `.eval_results/<task>.yaml` for the lm-eval tasks that map to a registered benchmark.

huggingface_hub (≥ 1.4) and the Hub read these files from a model repo and show each result on the
benchmark dataset's leaderboard. Which lm-eval task reports to which benchmark is data
(`hubpub/data/benchmarks.yaml`); a task without an entry (the demo's local tasks, for one) stays
in the card's `model-index` only. The files are written with huggingface_hub's own serializer.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import yaml

from hubpub.manifest import MANIFEST_NAME, Manifest

FOLDER = ".eval_results"


@dataclass(frozen=True)
class Benchmark:
    """A benchmark dataset registered on the Hub, the task id its eval.yaml declares, and lm-eval's metric for it."""

    dataset: str
    task_id: str
    metric: str
    filter: str = "none"


@dataclass(frozen=True)
class BenchmarkResults:
    """The files to stage (path in the repo → YAML text), and why each evaluated task that has none has none."""

    files: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@functools.cache
def benchmarks() -> dict[str, Benchmark]:
    """The lm-eval task → registered benchmark mapping shipped with hubpub."""
    text = (files("hubpub") / "data" / "benchmarks.yaml").read_text(encoding="utf-8")
    return {
        task: Benchmark(entry["dataset"], entry["task_id"], entry["metric"], entry.get("filter", "none"))
        for task, entry in yaml.safe_load(text).items()
    }


def benchmark_results(manifest: Manifest, *, tag: str | None) -> BenchmarkResults:
    """The `.eval_results` files of the quantized model's evaluation, for the tasks that map to a benchmark.

    Each entry carries the value lm-eval measured, the date the evaluation finished (when the manifest
    recorded it) and hubpub as its source: the CI run when there was one, else the release's manifest at
    its tag on the Hub.
    """
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    evaluated = manifest.stages.get("evaluate")
    if evaluated is None or evaluated.status != "done":
        return BenchmarkResults()
    metrics = evaluated.metrics
    settings = metrics["settings"]
    result = BenchmarkResults()
    for task in dict.fromkeys(row["task"] for row in metrics["rows"]):
        benchmark = benchmarks().get(task)
        if benchmark is None:
            result.skipped[task] = "not a registered Hub benchmark (hubpub/data/benchmarks.yaml)"
            continue
        rows = [
            row
            for row in metrics["rows"]
            if row["task"] == task
            and row["metric"] == benchmark.metric
            and row.get("filter", "none") == benchmark.filter
        ]
        if len(rows) != 1:
            result.skipped[task] = f"lm-eval reported no single {benchmark.metric} ({benchmark.filter}) for it"
            continue
        entry = EvalResultEntry(
            dataset_id=benchmark.dataset,
            task_id=benchmark.task_id,
            value=rows[0]["quantized"],
            date=metrics.get("finished_at"),
            source_url=manifest.ci_run_url or _manifest_url(manifest, tag),
            source_name=f"hubpub {manifest.hubpub_version}",
            notes=_notes(settings, benchmark),
        )
        text = yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False, allow_unicode=True)
        result.files[f"{FOLDER}/{task}.yaml"] = text
    return result


def _manifest_url(manifest: Manifest, tag: str | None) -> str:
    return f"https://huggingface.co/{manifest.repo_id}/blob/{tag or 'main'}/{MANIFEST_NAME}"


def _notes(settings: dict[str, Any], benchmark: Benchmark) -> str:
    limit = settings.get("limit")
    subset = (
        f", first {limit} examples" if isinstance(limit, int) else f", {limit:.0%} of the examples" if limit else ""
    )
    metric = benchmark.metric + ("" if benchmark.filter == "none" else f" ({benchmark.filter})")
    return (
        f"lm-evaluation-harness {settings['versions']['lm-eval']}, {settings['num_fewshot']}-shot{subset}, {metric};"
        " the quantized checkpoint of this repo"
    )
