"""GitHub Actions: log groups, step outputs and the step summary. Only the CLI calls this module."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hubpub.manifest import StageResult
from hubpub.quality import recovery_text


def under_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def start_group(title: str) -> None:
    # Workflow commands are read from stdout; stderr is flushed first so log lines land inside the group.
    sys.stderr.flush()
    print(f"::group::{title}", flush=True)


def end_group() -> None:
    sys.stderr.flush()
    print("::endgroup::", flush=True)


def set_outputs(values: Mapping[str, str]) -> None:
    """Append step outputs to $GITHUB_OUTPUT (multi-line values use a random delimiter)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            if "\n" in value:
                delimiter = f"hubpub_{secrets.token_hex(8)}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                handle.write(f"{name}={value}\n")


def append_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(markdown.rstrip() + "\n\n")


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def stage_line(stages: Mapping[str, StageResult]) -> str:
    parts = []
    for name, result in stages.items():
        took = f" {result.seconds:.1f} s" if result.status == "done" and result.seconds else ""
        parts.append(f"{name} {result.status}{took}")
    return ", ".join(parts)


def key_metrics(stages: Mapping[str, StageResult]) -> list[str]:
    """The few numbers a reviewer looks at first, each from the stage that measured it."""
    lines: list[str] = []
    quantize = stages.get("quantize")
    if quantize is not None and quantize.status != "failed" and "checkpoint_bytes" in quantize.metrics:
        lines.append(f"checkpoint {quantize.metrics['checkpoint_bytes'] / 1e6:,.1f} MB")
    verify = stages.get("verify")
    if verify is not None and verify.status != "failed" and "perplexity" in verify.metrics:
        perplexity = verify.metrics["perplexity"]
        lines.append(
            f"perplexity {perplexity['quantized']:.3f} vs base {perplexity['base']:.3f}"
            f" (ratio {perplexity['ratio']:.3f}, limit {perplexity['max_ratio']})"
        )
    vllm = stages.get("vllm")
    if vllm is not None:
        lines.append(f"vLLM: {vllm.metrics.get('summary') or vllm.reason or vllm.status}")
    evaluate = stages.get("evaluate")
    if evaluate is not None and evaluate.status in ("done", "cached"):
        for row in evaluate.metrics.get("rows", []):
            lines.append(
                f"{row['task']} {row['metric']}: {row['quantized']:.4f} vs base {row['base']:.4f},"
                f" {'recovery' if row['higher_is_better'] else 'ratio'} {recovery_text(row)}"
            )
    return lines


def release_summary(outcomes: Sequence[Any]) -> str:
    """Markdown for `hubpub release`: per variant, its stages, key metrics, and the repo and commit."""
    blocks = ["## hubpub release"]
    for outcome in outcomes:
        blocks.append(f"### {outcome.variant}: `{outcome.repo_id}`")
        blocks.append(f"Stages: {stage_line(outcome.stages)}")
        metrics = key_metrics(outcome.stages)
        if metrics:
            blocks.append("\n".join(f"- {line}" for line in metrics))
        if outcome.published is not None:
            blocks.append(published_line(outcome.published.as_dict()))
        else:
            blocks.append(f"Staged (not pushed) at `{outcome.staged_dir}`.")
        if outcome.logs is not None:
            blocks.append(f"Stage logs: `{outcome.logs}`.")
    return "\n\n".join(blocks)


def published_line(published: Mapping[str, Any]) -> str:
    repo = f"[{published['repo_id']}]({published['url']})"
    if published["status"] == "dry-run":
        return f"Dry run for {repo}: {published['plan']['bytes_to_send']:,} bytes would be sent."
    commit = published["commit"]
    link = f"[`{commit[:12]}`]({published['url'].rstrip('/')}/commit/{commit})" if commit else "no commit"
    tag = f", tag `{published['tag']}`" if published.get("tag") else ""
    return f"{published['status'].capitalize()}: {repo} at {link}{tag}."


def push_summary(results: Sequence[Mapping[str, Any]]) -> str:
    rows = ["## hubpub push", "", "| repo | status | commit | tag |", "| --- | --- | --- | --- |"]
    for result in results:
        commit = result["commit"] or ""
        rows.append(
            f"| [{_cell(result['repo_id'])}]({result['url']}) | {result['status']} | `{commit[:12]}` |"
            f" {_cell(result.get('tag') or '')} |"
        )
    return "\n".join(rows)


def republish_summary(rows: Sequence[Mapping[str, Any]], title: str = "hubpub republish") -> str:
    lines = [f"## {title}", "", "| repo | variant | result | commit or reason |", "| --- | --- | --- | --- |"]
    for row in rows:
        detail = f"`{row['commit'][:12]}`" if row.get("commit") and not row.get("reason") else row.get("reason") or ""
        repo = f"[{_cell(row['repo_id'])}]({row['url']})" if row.get("url") else _cell(row["repo_id"])
        lines.append(f"| {repo} | {_cell(row['variant'])} | {row['status']} | {_cell(detail)} |")
    return "\n".join(lines)


def publish_outputs(results: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """`repo_url` and `commit` of the (last) published repo, as the release workflow reads them."""
    published = [result for result in results if result.get("commit")]
    if not published:
        return {}
    last = published[-1]
    return {"repo_url": str(last["url"]), "commit": str(last["commit"])}


def error_annotation(message: str, title: str = "hubpub") -> None:
    print(f"::error title={escape_property(title)}::{escape_data(message)}", flush=True)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
