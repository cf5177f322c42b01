"""Model cards rendered from manifests: golden files, the seed's structure, strictness, metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hubpub.errors import StageError
from hubpub.manifest import Manifest
from hubpub.spec import load_spec
from hubpub.stages import card
from tests.conftest import DEMO_SPEC, demo_spec_copy
from tests.recipes.example import example_copy

HERE = Path(__file__).parent
FIXTURES = {
    variant: Manifest.model_validate_json((HERE / "fixtures" / f"demo-{variant}.json").read_text())
    for variant in ("W4A16", "W8A8")
}
UPDATE = os.environ.get("HUBPUB_UPDATE_GOLDEN") == "1"

# The section headings of the seed card (shared/seed/000_0d4869894bafc023.txt) and where each lives now.
SEED_HEADINGS = {
    "Model Details": "## Model Details",
    "W4A16 vs Other Schemes": "## W4A16 vs Other Schemes",
    "How to Use": "## How to Use",
    "Option 1 — vLLM (recommended for serving)": "### vLLM",
    "Option 2 — Transformers + compressed-tensors (no vLLM)": "### Transformers",
    "Option 3 — llmcompressor (same library used to quantize)": "### llm-compressor",
    "Quantization Recipe": "## Quantization Recipe",
    "Evaluation": "## Evaluation",
    "Limitations": "## Limitations",
    "When to use this vs the W8A8 version": "## When to use this vs the other variants",
    "Related Models": "## Related Models",
    "License": "## License",
    "Citation": "## Citation",
}


def render(variant: str, spec: Path = DEMO_SPEC) -> card.RenderedCard:
    release = load_spec(spec).select(variant)[0]
    manifest = FIXTURES[variant]
    return card.run(
        release,
        manifest,
        list(FIXTURES.values()),
        base_bytes=manifest.stages["preflight"].metrics["checkpoint_bytes"],
        base_license=None,
    )


@pytest.mark.parametrize("variant", ["W4A16", "W8A8"])
def test_demo_cards_match_their_golden_files(variant: str, demo_model: Path) -> None:
    golden = HERE / "golden" / f"demo-{variant}.md"
    text = render(variant).text
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "run with HUBPUB_UPDATE_GOLDEN=1 to accept the new card"


RECIPES = {
    variant: Manifest.model_validate_json((HERE / "fixtures" / f"recipes-{variant}.json").read_text())
    for variant in ("W4A16-AWQ", "W8A8-SmoothQuant")
}


@pytest.mark.parametrize("variant", sorted(RECIPES))
def test_recipe_example_cards_match_their_golden_files(variant: str, demo_model: Path, tmp_path: Path) -> None:
    """The example of the publishers' recipes: the algorithm's label, both modifiers in the recipe section and
    the reproduction snippet (manifests from a real CPU release of the example, as tests/recipes releases it)."""
    release = load_spec(example_copy(tmp_path, demo_model)).select(variant)[0]
    manifest = RECIPES[variant]
    base_bytes = manifest.stages["preflight"].metrics["checkpoint_bytes"]
    text = card.run(release, manifest, list(RECIPES.values()), base_bytes=base_bytes, base_license=None).text
    golden = HERE / "golden" / f"recipes-{variant}.md"
    if UPDATE:
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8"), "run with HUBPUB_UPDATE_GOLDEN=1 to accept the new card"


def test_a_release_checked_on_several_gpus_shows_its_tensor_parallel_size(demo_model: Path) -> None:
    release = load_spec(DEMO_SPEC).select("W8A8")[0]
    manifest = FIXTURES["W8A8"]
    vllm = manifest.stages["vllm"]
    on_four = vllm.model_copy(update={"metrics": {**vllm.metrics, "tensor_parallel_size": 4}})
    spread = manifest.model_copy(update={"stages": {**manifest.stages, "vllm": on_four}})
    assert f'LLM(model="{release.repo_id}", tensor_parallel_size=4)' in card.snippets(release, spread)["vllm"]
    assert f'LLM(model="{release.repo_id}")' in card.snippets(release, manifest)["vllm"]


def test_every_seed_heading_has_a_counterpart(demo_model: Path) -> None:
    lines = render("W4A16").text.splitlines()
    for seed_heading, ours in SEED_HEADINGS.items():
        assert ours in lines, f"no counterpart for the seed's '{seed_heading}'"


def test_measured_sizes_and_no_placeholders(demo_model: Path) -> None:
    text = render("W4A16").text
    assert "| Checkpoint size on disk | 116.7 MB (base: 269.1 MB; 2.31× smaller than the base) |" in text
    assert "| demo/SmolLM2-135M-Instruct-W8A8 | W8A8 | 166.8 MB |" in text
    assert "pending" not in text.lower()
    assert "| — | — |" not in text
    assert "| demo_capitals | acc |" in text and "| demo_wikitext | word_perplexity ↓ |" in text
    assert "Not evaluated" not in text


def test_utf8_survives(demo_model: Path, tmp_path: Path) -> None:
    extra = (
        "card:\n  extra_sections:\n    - title: Notes — “quoted” ✅\n      body: Café, naïve, 東京 — βœ… survives.\n"
    )
    text = render("W4A16", demo_spec_copy(tmp_path, append=extra)).text
    assert "## Notes — “quoted” ✅" in text and "Café, naïve, 東京 — βœ… survives." in text
    assert "W4A16 — INT4" in text


def test_metadata_parses_back_equal(demo_model: Path) -> None:
    rendered = render("W8A8")
    parsed = ModelCard(rendered.text).data.to_dict()
    assert parsed == rendered.metadata
    assert parsed["base_model_relation"] == "quantized"
    assert parsed["license"] == "apache-2.0"
    assert {"w8a8", "llmcompressor", "compressed-tensors"} <= set(parsed["tags"])


def test_a_missing_fact_fails_the_render(demo_model: Path, tmp_path: Path) -> None:
    template = tmp_path / "card.md.j2"
    template.write_text(
        '{% extends "model_card.md.j2" %}{% block limitations %}{{ card.unmeasured_speedup }}{% endblock %}'
    )
    release = load_spec(DEMO_SPEC).select("W4A16")[0]
    release = release.model_copy(update={"card": release.card.model_copy(update={"template": template})})
    manifest = FIXTURES["W4A16"]
    with pytest.raises(StageError, match="unmeasured_speedup"):
        card.run(release, manifest, [manifest], base_bytes=1, base_license=None)


def test_a_template_overrides_one_block(demo_model: Path, tmp_path: Path) -> None:
    template = tmp_path / "card.md.j2"
    template.write_text('{% extends "model_card.md.j2" %}{% block citation %}## Citation\n\nCite us.{% endblock %}')
    release = load_spec(DEMO_SPEC).select("W4A16")[0]
    release = release.model_copy(update={"card": release.card.model_copy(update={"template": template})})
    manifest = FIXTURES["W4A16"]
    text = card.run(release, manifest, [manifest], base_bytes=1, base_license=None).text
    assert text.rstrip().endswith("## Citation\n\nCite us.")
    assert "## Model Details" in text


def test_unknown_license_is_caught_before_any_push(demo_model: Path) -> None:
    release = load_spec(DEMO_SPEC).select("W4A16")[0].model_copy(update={"license": None})
    manifest = FIXTURES["W4A16"]
    with pytest.raises(StageError, match="license is unknown"):
        card.run(release, manifest, [manifest], base_bytes=1, base_license=None)
    inherited = card.run(release, manifest, [manifest], base_bytes=1, base_license="mit")
    assert inherited.metadata["license"] == "mit" and "inherited from the base model" in inherited.text


@pytest.mark.parametrize("relative", [False, True], ids=["absolute-workdir", "relative-workdir"])
def test_the_extracted_snippet_runs_against_a_checkpoint(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relative: bool
) -> None:
    snippet = (
        "from transformers import AutoTokenizer\n\n"
        'model_id = "org/model"\n'
        "print(AutoTokenizer.from_pretrained(model_id).eos_token)\n"
    )
    text = f"{card.SNIPPET_MARKER}\n```python\n{snippet}```\n"
    folder = tmp_path / "stage"
    folder.mkdir()
    if relative:  # `--workdir .hubpub/work`, as the release workflow passes it
        monkeypatch.chdir(tmp_path)
        folder = Path("stage")
    assert card.run_snippet(text, "org/model", tiny_llama, folder) == {"ran": True, "output": "<|im_end|>"}


def test_a_failing_snippet_stops_the_card(tiny_llama: Path, tmp_path: Path) -> None:
    text = f'{card.SNIPPET_MARKER}\n```python\nmodel_id = "org/model"\nraise SystemExit("broken snippet")\n```\n'
    with pytest.raises(StageError, match="broken snippet"):
        card.run_snippet(text, "org/model", tiny_llama, tmp_path)
