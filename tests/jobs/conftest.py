"""Release specs for jobs: a tiny Llama family whose checkpoint sits beside the spec (a link in its bundle)."""

from __future__ import annotations

from pathlib import Path

TOKEN = "hf_jobs_tester_token_0123456789"
JOBS = "jobs: {flavor: a10g-large, timeout: 20m}\n"


def tiny_family(folder: Path, model: Path, variants: str, *, jobs: str = JOBS) -> Path:
    """A family over the tiny Llama (linked as `model` beside the spec), with `variants` as YAML list items."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model").symlink_to(model, target_is_directory=True)
    spec = folder / "specs" / "tiny.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "family: tiny-jobs\n"
        "base_model: test/tiny-llama\n"
        "source: {path: ../model}\n"
        "license: apache-2.0\n"
        "version: 0.0.1\n"
        "verify:\n  prompts: ['What is the capital of France?']\n  max_new_tokens: 12\n  max_perplexity_ratio: 3.0\n"
        "  vllm: off\n"
        f"{jobs}"
        f"variants:\n{variants}",
        encoding="utf-8",
    )
    return spec


TWO_VARIANTS = (
    "  - {name: W4A16-g64, scheme: W4A16, group_size: 64, repo_id: tester/tiny-w4a16-g64}\n"
    "  - {name: W4A16-g32, scheme: W4A16, group_size: 32, repo_id: tester/tiny-w4a16-g32, jobs: {flavor: h200}}\n"
)
# W8A16 quantizes in groups of 128, which the tiny model's input size (64) cannot take: the job's preflight fails.
FAILING_VARIANT = "  - {name: W8A16, scheme: W8A16, repo_id: tester/tiny-w8a16}\n"
