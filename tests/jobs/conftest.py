"""Release specs for jobs: a tiny Llama family whose base the embedded Hub hosts (a job reads the spec's folder
alone, so the base comes from the Hub, as on Hugging Face's machines)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi

from hubpub.hub import HubServer, Identity

TOKEN = "hf_jobs_tester_token_0123456789"
BASE = "tester/tiny-llama"
JOBS = "jobs: {flavor: a10g-large, timeout: 20m}\n"


def tiny_family(folder: Path, variants: str, *, jobs: str = JOBS) -> Path:
    """A family over the tiny Llama hosted as BASE on the Hub, with `variants` as YAML list items."""
    spec = folder / "specs" / "tiny.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(
        "family: tiny-jobs\n"
        f"base_model: {BASE}\n"
        "license: apache-2.0\n"
        "version: 0.0.1\n"
        "verify:\n  prompts: ['What is the capital of France?']\n  max_new_tokens: 12\n  max_perplexity_ratio: 3.0\n"
        "  vllm: off\n"
        f"{jobs}"
        f"variants:\n{variants}",
        encoding="utf-8",
    )
    return spec


def upload_base(endpoint: str, model: Path) -> None:
    """The tiny Llama as BASE on a running Hub, through huggingface_hub's own upload."""
    api = HfApi(endpoint=endpoint, token=TOKEN)
    api.create_repo(BASE, exist_ok=True)
    api.upload_folder(repo_id=BASE, folder_path=model, commit_message="the tiny Llama")


def hub_with_base(hub_dir: Path, model: Path) -> None:
    """An embedded Hub store in `hub_dir` that hosts the tiny Llama as BASE (for `--hub-dir` runs)."""
    with HubServer(hub_dir, tokens={TOKEN: Identity(name="tester")}) as server:
        upload_base(server.url, model)


TWO_VARIANTS = (
    "  - {name: W4A16-g64, scheme: W4A16, group_size: 64, repo_id: tester/tiny-w4a16-g64}\n"
    "  - {name: W4A16-g32, scheme: W4A16, group_size: 32, repo_id: tester/tiny-w4a16-g32, jobs: {flavor: h200}}\n"
)
# W8A16 quantizes in groups of 128, which the tiny model's input size (64) cannot take: the job's preflight fails.
FAILING_VARIANT = "  - {name: W8A16, scheme: W8A16, repo_id: tester/tiny-w8a16}\n"
