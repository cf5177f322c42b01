"""Card stage: the model card, rendered from the manifest's measured facts, and its snippet run.

The body comes from Jinja2 templates rendered with StrictUndefined, so a missing fact fails the
render; the metadata is built with huggingface_hub's ModelCardData and linted before any push.
The Transformers snippet is taken out of the rendered card and run against the staged files:
a card whose snippet fails is not published.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from hubpub import stagelog
from hubpub.errors import SpecError, SpecProblem, StageError
from hubpub.evalresults import FOLDER, benchmark_results
from hubpub.licenses import HUB_LICENSES
from hubpub.manifest import Manifest
from hubpub.measure import record_child_peaks
from hubpub.quality import recovery_text
from hubpub.schemes import ALGORITHM_LABELS, SCHEMES
from hubpub.spec import ReleaseSpec, is_local_dataset
from hubpub.stages._child import failure
from hubpub.vllm import VllmPrediction
from hubpub.vllm.agreement import PredictionCheck
from hubpub.warm import WarmInterpreter

logger = logging.getLogger(__name__)

SNIPPET_MARKER = "<!-- hubpub:snippet transformers -->"
VLLM_SNIPPET_MARKER = "<!-- hubpub:snippet vllm -->"
SNIPPET_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class RenderedCard:
    text: str
    metadata: dict[str, Any]
    eval_results: dict[str, str] = field(default_factory=dict)
    """`.eval_results/<task>.yaml` files (path → text) for the tasks that report to a Hub benchmark."""


def run(
    release: ReleaseSpec,
    manifest: Manifest,
    family: list[Manifest],
    *,
    base_bytes: int,
    base_license: str | None,
    siblings: Sequence[ReleaseSpec] = (),
) -> RenderedCard:
    """Render the card of `manifest`'s release.

    `family` holds the manifest of every variant whose facts are known (this one too); `siblings`
    are the family's variants from the spec, so one without a manifest yet is still listed.
    """
    facts = card_facts(release, manifest, family, base_bytes=base_bytes, base_license=base_license, siblings=siblings)
    from huggingface_hub import ModelCard, ModelCardData

    card_data = ModelCardData(**_metadata(release, manifest, facts))
    metadata = card_data.to_dict()  # type: ignore[no-untyped-call]
    problems = lint_metadata(metadata)
    if problems:
        raise StageError(f"{manifest.repo_id}: the card's metadata would be rejected by the Hub: {'; '.join(problems)}")
    body = render_body(release, facts)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")
    benchmarks = benchmark_results(manifest, tag=release.hub_tag)
    by_reason: dict[str, list[str]] = {}
    for task, reason in benchmarks.skipped.items():
        by_reason.setdefault(reason, []).append(task)
    for reason, tasks in by_reason.items():
        logger.info("%s: no %s file for %s: %s; in model-index only", release.variant, FOLDER, ", ".join(tasks), reason)
    return RenderedCard(text=str(card), metadata=metadata, eval_results=benchmarks.files)


def rerender(release: ReleaseSpec, manifest: Manifest, family: list[Manifest], siblings: Sequence[ReleaseSpec]) -> str:
    """The card of an already made release, from its manifest alone (no checkpoint, no base folder)."""
    rendered_before = manifest.stages.get("card")
    base_license = rendered_before.metrics.get("metadata", {}).get("license") if rendered_before else None
    return run(
        release,
        manifest,
        family,
        base_bytes=manifest.stages["preflight"].metrics["checkpoint_bytes"],
        base_license=base_license,
        siblings=siblings,
    ).text


def render_body(release: ReleaseSpec, facts: dict[str, Any]) -> str:
    """The card's body from the default template, or the spec's `card.template` extending it.

    A spec's template is user input (a job's spec bundle, a pull request's spec): it renders in Jinja2's
    immutable sandbox, so it reaches no Python internals, and includes nothing from outside its folder.
    """
    from jinja2 import ChoiceLoader, StrictUndefined, TemplateError, UndefinedError
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    loaders: list[Any] = [_folder_loader(_templates())]
    entry = "model_card.md.j2"
    if release.card.template is not None:
        loaders.insert(0, _folder_loader(release.card.template.parent))
        entry = release.card.template.name
    environment = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=False,
        autoescape=False,
    )
    try:
        text = environment.get_template(entry).render(card=facts)
    except UndefinedError as exc:
        raise StageError(f"{release.repo_id}: the card template needs a fact that was not measured: {exc}") from None
    except SecurityError as exc:
        raise _template_error(release, exc, "reaches for what a card template may not use") from None
    except TemplateError as exc:
        raise _template_error(release, exc, "cannot be rendered") from None
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _template_error(release: ReleaseSpec, exc: BaseException, what: str) -> SpecError:
    """A SpecError at the template's line that failed (the spec's own template, else the shipped one)."""
    template = release.card.template
    file, line = (template, 1) if template is not None else (_templates() / "model_card.md.j2", 1)
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename.endswith(".j2") or (template is not None and Path(frame.filename) == template):
            file, line = Path(frame.filename), frame.lineno or 1
            break
    return SpecError([SpecProblem(file, line, 1, "card.template", f"the template {what}: {exc}")])


def _folder_loader(folder: Path) -> Any:
    """A FileSystemLoader over one folder that reads no file resolving outside it (through a link)."""
    from jinja2 import FileSystemLoader, TemplateNotFound

    root = folder.resolve()

    class FolderLoader(FileSystemLoader):
        def get_source(self, environment: Any, template: str) -> Any:
            source, filename, uptodate = super().get_source(environment, template)
            if not Path(filename).resolve().is_relative_to(root):
                raise TemplateNotFound(template)
            return source, filename, uptodate

    return FolderLoader(str(root))


def _templates() -> Path:
    return Path(str(files("hubpub") / "templates"))


def extract_snippet(card_text: str, marker: str = SNIPPET_MARKER) -> str | None:
    """The Python code block right after `marker` in a rendered card, or None when the card has none."""
    match = re.search(re.escape(marker) + r"\s*```python\n(.*?)```", card_text, re.DOTALL)
    return match.group(1) if match else None


def run_snippet(card_text: str, repo_id: str, checkpoint: Path, workdir: Path) -> dict[str, Any]:
    """Run the card's Transformers snippet with the repo id pointing at the staged files."""
    snippet = extract_snippet(card_text)
    if snippet is None:
        raise StageError("the rendered card has no Transformers snippet to run")
    # The snippet runs in `workdir`: every path it is given must not depend on this process's folder.
    workdir = workdir.resolve()
    script = _snippet_script(snippet, repo_id, checkpoint.resolve(), workdir / "card_snippet.py", "Transformers")
    peaks_path = workdir / "card_snippet.peaks.json"
    printed, log = workdir / "card_snippet.stdout", workdir / "card_snippet.log"
    # A forked child of the script server: a plain interpreter that has imported torch and transformers, with
    # the snippet's script as __main__ (through the peaks wrapper, so the snippet's own peak memory is known).
    interpreter = WarmInterpreter("scripts")
    try:
        code = interpreter.run(
            "hubpub.peaks", [str(peaks_path), str(script)], SNIPPET_TIMEOUT_SECONDS, stdout=printed, cwd=workdir
        )
    except subprocess.TimeoutExpired:
        raise StageError(f"the card's Transformers snippet ran longer than {SNIPPET_TIMEOUT_SECONDS} s") from None
    finally:
        log.write_text(interpreter.output(), encoding="utf-8")
        interpreter.close()
        stagelog.include("the card's Transformers snippet", log.read_text(encoding="utf-8"))
    if peaks_path.is_file():
        record_child_peaks(json.loads(peaks_path.read_text(encoding="utf-8")))
    if code != 0:
        raise StageError(
            failure("the card's Transformers snippet failed, so the card is not published", log.read_text("utf-8"))
        )
    output = printed.read_text(encoding="utf-8", errors="replace").strip()
    if not output:
        raise StageError("the card's Transformers snippet printed nothing")
    return {"ran": True, "output": output}


def run_vllm_snippet(
    card_text: str, repo_id: str, checkpoint: Path, workdir: Path, vllm_python: Path | None
) -> dict[str, Any] | None:
    """Run the card's vLLM snippet, as a user would, in the vLLM environment against the staged files.

    None when the card shows no vLLM snippet (vLLM did not load the release). A snippet that fails or prints
    nothing raises StageError: the card is not published.
    """
    snippet = extract_snippet(card_text, VLLM_SNIPPET_MARKER)
    if snippet is None:
        return None
    return run_vllm_code(snippet, repo_id, checkpoint, workdir, vllm_python)


def run_vllm_code(
    snippet: str, repo_id: str, checkpoint: Path, workdir: Path, vllm_python: Path | None
) -> dict[str, Any]:
    """Run one vLLM snippet (as `snippets()["vllm"]` writes it) against `checkpoint`; raise StageError if it fails."""
    if vllm_python is None:
        raise StageError("the card shows a vLLM snippet, but no vLLM environment is configured to run it")
    from hubpub.vllm.smoke import run_script

    workdir = workdir.resolve()
    script = _snippet_script(snippet, repo_id, checkpoint.resolve(), workdir / "card_vllm_snippet.py", "vLLM")
    result = run_script(vllm_python, script, workdir=workdir, timeout_s=SNIPPET_TIMEOUT_SECONDS)
    if not result.ok:
        # Within a stage, the stage's log holds the snippet's output and the CLI shows its tail.
        tail = "" if stagelog.active() else f"\n{result.log_tail}"
        raise StageError(f"the card's vLLM snippet failed, so the card is not published: {result.reason}{tail}")
    output = result.stdout.strip()
    if not output:
        raise StageError("the card's vLLM snippet printed nothing")
    return {"ran": True, "output": output, "seconds": round(result.seconds, 1)}


def _snippet_script(snippet: str, repo_id: str, checkpoint: Path, script: Path, which: str) -> Path:
    """The snippet as a script whose repo id names the staged folder instead."""
    if f'"{repo_id}"' not in snippet:
        raise StageError(f"the card's {which} snippet does not name {repo_id}")
    script = script.resolve()
    script.write_text(snippet.replace(f'"{repo_id}"', json.dumps(str(checkpoint.resolve()))), encoding="utf-8")
    return script


# -- facts ------------------------------------------------------------------------------------


def human_bytes(count: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{count} B"


def human_count(count: int) -> str:
    return f"{count / 1e9:.2f} B" if count >= 1e9 else f"{count / 1e6:.1f} M"


def card_facts(
    release: ReleaseSpec,
    manifest: Manifest,
    family: list[Manifest],
    *,
    base_bytes: int,
    base_license: str | None,
    siblings: Sequence[ReleaseSpec] = (),
) -> dict[str, Any]:
    """Everything the templates may print, each taken from a manifest or the scheme registry."""
    scheme = SCHEMES[release.scheme]
    stages = manifest.stages
    preflight, quantize, verify = stages["preflight"].metrics, stages["quantize"].metrics, stages["verify"].metrics
    size = quantize["checkpoint_bytes"]
    perplexity = verify["perplexity"]
    calibration = manifest.calibration
    family_rows = [_variant_row(member, manifest.repo_id) for member in family]
    return {
        "title": f"{release.repo_id.split('/')[-1]} ({scheme.name} of {release.base_model.split('/')[-1]})",
        "repo_id": release.repo_id,
        "variant": release.variant,
        "base_model": release.base_model,
        "base_url": f"https://huggingface.co/{release.base_model}",
        "base_origin": f"revision `{manifest.base_revision}`" if manifest.base_revision else _local_origin(release),
        "hubpub_version": manifest.hubpub_version,
        "algorithm_label": ALGORITHM_LABELS[release.algorithm],
        "scheme": {
            "name": scheme.name,
            "summary": scheme.summary,
            "memory_saving": scheme.memory_saving,
            "compute": scheme.compute,
            "best_for": scheme.best_for,
            "weight_label": f"{scheme.weights.label} ({scheme.weights.strategy}"
            + (f", group size {release.effective_group_size}" if scheme.uses_groups else "")
            + (", symmetric)" if scheme.weights.symmetric else ", asymmetric)"),
            "activation_label": f"{scheme.activations.label} (dynamic, per {scheme.activations.strategy})"
            if scheme.activations
            else "BF16",
        },
        "comparison": [
            {
                "name": other.name,
                "weight_bits": other.weight_bits,
                "activation_bits": other.activation_bits,
                "memory_saving": other.memory_saving,
                "compute": other.compute,
                "best_for": other.best_for,
                "is_this": other.name == scheme.name,
            }
            for other in SCHEMES.values()
        ],
        "details": {
            "architecture": preflight["architecture"],
            "parameters": human_count(preflight["parameters"]),
            "group_size": preflight["group_size"],
            "quantized_layers": preflight["quantized_layers"],
            "unquantized_layers": preflight["unquantized_layers"],
            "size": human_bytes(size),
            "base_size": human_bytes(base_bytes),
            "ratio": f"{base_bytes / size:.2f}× smaller than the base",
        },
        "calibration_text": _calibration_text(calibration),
        "calibration_used": calibration is not None,
        "recipe_yaml": yaml.safe_dump(manifest.recipe, sort_keys=False).strip(),
        "snippets": snippets(release, manifest),
        "vllm_usage": _vllm_usage(manifest),
        "verification": {
            "versions": ", ".join(f"{name} {value}" for name, value in verify["versions"].items()),
            "device": verify["device"],
            "dtype": _arithmetic(verify),
            "load_seconds": f"{verify['load_seconds']:.1f}",
            "tokens": perplexity["tokens"],
            "base_perplexity": f"{perplexity['base']:.3f}",
            "quantized_perplexity": f"{perplexity['quantized']:.3f}",
            "ratio": f"{perplexity['ratio']:.3f}",
            "max_ratio": perplexity["max_ratio"],
            "artifacts": _artifacts_text(verify["artifacts"]),
            "vllm": _vllm_text(stages.get("vllm")),
            "vllm_check": _vllm_prediction_check(stages.get("vllm")),
            "vllm_preflight": _vllm_preflight(stages.get("vllm")),
            "generations": verify["generations"],
        },
        "evaluation": _evaluation(stages.get("evaluate")),
        "limitations": _limitations(release, manifest),
        "variants": family_rows,
        "related": _related(release, family_rows, base_bytes, siblings),
        "provenance": {
            "base_revision": manifest.base_revision or _local_origin(release),
            "source_sha256": manifest.source_sha256,
            "spec_file": manifest.spec_file,
            "spec_sha256": manifest.spec_sha256,
            "versions": manifest.versions,
            "tools": ", ".join(f"{name} {value}" for name, value in manifest.versions.items() if value),
            "device": _quantized_on(release, manifest.device),
            "gpu_peaks": gpu_peaks(manifest),
            "ci_run_url": manifest.ci_run_url,
        },
        "license": release.license or base_license or "unknown",
        "license_inherited": release.license is None and base_license is not None,
        "citation": _citation(release),
        "extra_sections": [section.model_dump() for section in release.card.extra_sections],
    }


def _quantized_on(release: ReleaseSpec, device: str | None) -> str:
    """The device that quantized the checkpoint, and on the CPU why: a CPU run the spec declares, or a machine
    without a GPU (a machine with one runs a release on the CPU only when the spec declares it)."""
    if device is None:
        return "(not recorded)"
    if device != "cpu":
        return device
    if release.runner is not None and release.runner.cpu_run:
        return "cpu: a CPU run, declared in the spec (`runner.gpus: 0`)"
    return "cpu: the release machine has no GPU"


def gpu_peaks(manifest: Manifest) -> list[dict[str, str]]:
    """One row per stage that used a GPU: the memory reserved on each device at its peak (none on a CPU)."""
    return [
        {
            "stage": name,
            "text": ", ".join(f"cuda:{index} {human_bytes(round(mib * 2**20))}" for index, mib in peaks.items()),
        }
        for name, peaks in ((name, result.peak_gpu_mb) for name, result in manifest.stages.items())
        if peaks
    ]


def _variant_row(member: Manifest, this_repo: str) -> dict[str, Any]:
    scheme = SCHEMES[member.release["scheme"]]
    return {
        "repo_id": member.repo_id,
        "url": f"https://huggingface.co/{member.repo_id}",
        "scheme": scheme.name,
        "size": human_bytes(member.stages["quantize"].metrics["checkpoint_bytes"]),
        "best_for": scheme.best_for,
        "is_this": member.repo_id == this_repo,
    }


def _related(
    release: ReleaseSpec, variants: list[dict[str, Any]], base_bytes: int, siblings: Sequence[ReleaseSpec]
) -> list[dict[str, str]]:
    rows = [
        {
            "name": f"{release.base_model} (base)",
            "scheme": "BF16",
            "size": human_bytes(base_bytes),
            "link": f"[{release.base_model}](https://huggingface.co/{release.base_model})",
        }
    ]
    for row in variants:
        rows.append(
            {
                "name": row["repo_id"],
                "scheme": row["scheme"],
                "size": row["size"],
                "link": "this model" if row["is_this"] else f"[{row['repo_id']}]({row['url']})",
            }
        )
    measured = {row["repo_id"] for row in variants}
    for sibling in siblings:
        if sibling.repo_id not in measured:
            rows.append(
                {
                    "name": f"{sibling.repo_id} (variant {sibling.variant} of this family)",
                    "scheme": SCHEMES[sibling.scheme].name,
                    "size": "not measured by this release",
                    "link": f"[{sibling.repo_id}](https://huggingface.co/{sibling.repo_id})",
                }
            )
    for related in release.related_models:
        rows.append(
            {
                "name": related.repo_id + (f" ({related.description})" if related.description else ""),
                "scheme": related.scheme or "not stated",
                "size": "not measured by this release",
                "link": f"[{related.repo_id}](https://huggingface.co/{related.repo_id})",
            }
        )
    return rows


def _calibration_text(calibration: dict[str, Any] | None) -> str:
    if calibration is None:
        return "none: this scheme and algorithm need no calibration data"
    where = calibration["dataset"] + (f" [{calibration['split']}]" if calibration.get("split") else "")
    return (
        f"{where}, {calibration['samples']} samples of up to {calibration['max_seq_length']} tokens"
        f" ({calibration['tokens']} tokens in all), seed {calibration['seed']}"
    )


def _artifacts_text(artifacts: dict[str, list[str]]) -> str:
    text = f"identical to the base ({', '.join(artifacts['identical'])})" if artifacts["identical"] else "none found"
    if artifacts["missing"]:
        text += f"; missing: {', '.join(artifacts['missing'])}"
    if artifacts["different"]:
        text += f"; different from the base: {', '.join(artifacts['different'])}"
    return text


def vllm_loaded(stage: Any) -> bool:
    """Whether the release really loaded and generated in vLLM (a prediction is not enough)."""
    return stage is not None and stage.status == "done" and bool(stage.metrics.get("smoke", {}).get("ok"))


def _vllm_build(smoke: dict[str, Any]) -> str:
    version = smoke.get("vllm_version") or "(version unknown)"
    distribution = smoke.get("distribution")
    if distribution and distribution != "vllm":
        return f"{distribution} {version} (a community build of vLLM)"
    return f"vLLM {version}"


def _vllm_platform(smoke: dict[str, Any]) -> str:
    return str(smoke.get("platform_text") or smoke.get("gpu") or "an unrecorded platform")


def _vllm_text(stage: Any) -> str:
    if stage is None or stage.status == "skipped" or "smoke" not in stage.metrics:
        reason = stage.reason if stage is not None and stage.reason else "not run"
        return f"not loaded in vLLM for this release ({reason})"
    smoke = stage.metrics["smoke"]
    if not smoke["ok"]:
        return f"no: {_vllm_build(smoke)} on {_vllm_platform(smoke)} failed. {_one_line(smoke['reason'])}"
    kernels = f"; kernels: {', '.join(smoke['kernels'])}" if smoke.get("kernels") else ""
    disagreements = stage.metrics.get("disagreements", [])
    agreement = (
        f"; first tokens differ from Transformers for {len(disagreements)} of {len(smoke['outputs'])} prompts"
        if disagreements
        else "; first tokens agree with Transformers"
    )
    return (
        f"yes: {_vllm_build(smoke)}, torch {smoke['torch_version']}, on {_vllm_platform(smoke)},"
        f" load {smoke['load_seconds']:.1f} s{kernels}{agreement}"
    )


def _vllm_prediction_check(stage: Any) -> str | None:
    """What the real load said of the prediction for its platform; None when nothing was compared."""
    if stage is None or "prediction_check" not in stage.metrics:
        return None
    check = PredictionCheck.from_dict(stage.metrics["prediction_check"])
    if check.agrees is None:
        return f"no prediction covers {check.observed_on or 'the platform it ran on'}"
    if check.agrees:
        return f"the prediction for {check.platform} matched this load"
    return f"the prediction for {check.platform} was wrong: " + "; ".join(check.differences)


def _vllm_usage(manifest: Manifest) -> dict[str, Any]:
    """The How to Use section's vLLM part: the snippet when vLLM loaded the release, else why there is none."""
    stage = manifest.stages.get("vllm")
    if stage is None:
        return {"runs": False, "text": "No vLLM snippet: this release was not loaded in vLLM."}
    smoke = stage.metrics.get("smoke")
    # The card stage runs the snippet it shows before anything is published: a failing one stops the release.
    if smoke is not None and vllm_loaded(stage):
        ran = f"This snippet ran against this release's files in {_vllm_build(smoke)} on {_vllm_platform(smoke)}."
        return {"runs": True, "text": ran}
    prediction = VllmPrediction.from_dict(stage.metrics["preflight"]) if "preflight" in stage.metrics else None
    loads = [verdict.generation for verdict in prediction.verdicts if verdict.loads] if prediction else []
    predicted = f" hubpub predicts that it loads on {', '.join(loads)} (see Verification)." if loads else ""
    if smoke is not None and not smoke["ok"]:
        first_line = smoke["reason"].strip().splitlines()[0] if smoke.get("reason") else "no reason recorded"
        failed = f"{_vllm_build(smoke)} on {_vllm_platform(smoke)} did not load this checkpoint ({first_line})."
        return {"runs": False, "text": f"No vLLM snippet: {failed}{predicted}"}
    return {"runs": False, "text": f"No vLLM snippet: this release was not loaded in vLLM.{predicted}"}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _vllm_preflight(stage: Any) -> dict[str, Any] | None:
    """The static prediction per platform (GPU generations, then CPUs), as table rows; None when it did not run."""
    if stage is None or "preflight" not in stage.metrics:
        return None
    prediction = VllmPrediction.from_dict(stage.metrics["preflight"])
    if not prediction.quantized:
        return None
    rows = [
        {
            "generation": verdict.generation,
            "hardware": verdict.hardware,
            "vllm": verdict.vllm,
            "loads": "yes" if verdict.loads else "no",
            "schemes": ", ".join(verdict.schemes) or "–",
            "kernels": ", ".join(verdict.kernels) or "–",
            "notes": "; ".join([*verdict.reasons, *verdict.notes]) or "–",
        }
        for verdict in prediction.verdicts
    ]
    builds = ", ".join(dict.fromkeys(verdict.vllm for verdict in prediction.verdicts))
    return {"builds": builds, "rows": rows, "warnings": list(prediction.warnings)}


def _evaluation(stage: Any) -> dict[str, Any]:
    if stage is None or stage.status not in ("done", "cached"):
        reason = stage.reason if stage is not None and stage.reason else "no evaluation ran"
        return {"results": [], "reason": reason}
    rows = [
        {
            "task": row["task"],
            "metric": row["metric"] + ("" if row["higher_is_better"] else " ↓"),
            "base": _with_stderr(row["base"], row["base_stderr"]),
            "quantized": _with_stderr(row["quantized"], row["quantized_stderr"]),
            "delta": f"{row['delta']:+.4f}",
            "recovery": recovery_text(row),
        }
        for row in stage.metrics["rows"]
    ]
    settings = stage.metrics["settings"]
    limit = settings["limit"]
    how = f"lm-evaluation-harness {settings['versions']['lm-eval']}, {settings['num_fewshot']}-shot" + (
        f", first {limit} examples per task"
        if isinstance(limit, int)
        else f", {limit:.0%} of each task"
        if limit
        else ""
    )
    bootstrap = stage.metrics.get("bootstrap")
    intervals = (
        f"a paired bootstrap over the examples both models answered ({bootstrap['resamples']} resamples,"
        f" seed {bootstrap['seed']})"
        if bootstrap
        else None
    )
    return {"results": rows, "reason": "", "how": how, "intervals": intervals}


def _with_stderr(value: float, stderr: float | None) -> str:
    return f"{value:.4f} ± {stderr:.4f}" if stderr is not None else f"{value:.4f}"


def _limitations(release: ReleaseSpec, manifest: Manifest) -> list[str]:
    scheme = SCHEMES[release.scheme]
    items = []
    if scheme.activations is None:
        items.append(
            f"Weight-only quantization: activations stay in 16 bits and compute runs in {scheme.compute};"
            " gains come from memory bandwidth, not faster arithmetic."
        )
    else:
        items.append(f"Activations are quantized at run time; the speed-up needs {scheme.compute}.")
    if scheme.weight_bits == 4:
        items.append(
            "4-bit weights lose more accuracy than 8-bit schemes; prefer an 8-bit variant when accuracy matters most."
        )
    unquantized = manifest.stages["preflight"].metrics["unquantized_layers"]
    if unquantized:
        items.append(f"Kept in 16 bits, and counted in the size above: {', '.join(unquantized)}.")
    calibration = release.calibration
    if manifest.calibration is not None and calibration is not None:
        source = "a local file" if is_local_dataset(calibration.dataset) else calibration.dataset
        items.append(f"Calibrated on {source}: accuracy may degrade on text far from it.")
    perplexity = manifest.stages["verify"].metrics["perplexity"]
    items.append(
        f"Perplexity was compared on one held-out English text of {perplexity['tokens']} tokens;"
        " it is a smoke test of the quantization, not a benchmark."
    )
    stage = manifest.stages.get("vllm")
    smoke = stage.metrics.get("smoke") if stage is not None else None
    if smoke is not None and not smoke["ok"]:
        items.append(
            f"{_vllm_build(smoke)} on {_vllm_platform(smoke)} did not load this checkpoint (see Verification);"
            " on other platforms its vLLM compatibility is predicted from the checkpoint's files, not observed."
        )
    elif not vllm_loaded(stage):
        items.append(
            "Not loaded in vLLM for this release: its vLLM compatibility is predicted from the checkpoint's files"
            " (see Verification), not observed."
            if _vllm_preflight(stage)
            else "Not checked in vLLM for this release."
        )
    else:
        items.append(
            f"Loaded in vLLM on {_vllm_platform(smoke or {})} only; on other platforms its vLLM compatibility is"
            " predicted from the checkpoint's files (see Verification), not observed."
        )
    evaluated = manifest.stages.get("evaluate")
    if evaluated is None or evaluated.status != "done":
        items.append("No task accuracy was measured for this release.")
    elif evaluated.metrics["settings"]["limit"]:
        items.append("Accuracy was measured on a subset of each task (see Evaluation); treat it as indicative.")
    return items


def _local_origin(release: ReleaseSpec) -> str:
    source = release.source
    if source is not None and source.gguf_file:
        return f"converted from the GGUF file {source.gguf_file}"
    return "a local checkpoint"


def _citation(release: ReleaseSpec) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", release.base_model.split("/")[-1].lower()).strip("_")
    return (
        f"@misc{{{key},\n"
        f"  title = {{{release.base_model.split('/')[-1]}}},\n"
        f"  author = {{{release.base_model.split('/')[0]}}},\n"
        f"  url = {{https://huggingface.co/{release.base_model}}}\n"
        "}"
    )


def _arithmetic(verify: dict[str, Any]) -> str:
    weights = verify.get("weights_dtype")
    if weights is None or weights == verify["dtype"] or verify["dtype"] == "auto":
        return str(verify["dtype"])
    return f"{weights} weights, {verify['dtype']} arithmetic"


def snippets(release: ReleaseSpec, manifest: Manifest) -> dict[str, str]:
    """The card's code blocks: vLLM, Transformers, llm-compressor and the reproduction script."""
    prompt = manifest.stages["verify"].metrics["generations"][0]["prompt"]
    repo = release.repo_id
    vllm_stage = manifest.stages.get("vllm")
    tensor_parallel_size = vllm_stage.metrics.get("tensor_parallel_size", 1) if vllm_stage else 1
    # The snippet loads the release the way the vLLM check did: across as many GPUs, when more than one.
    parallel = f", tensor_parallel_size={tensor_parallel_size}" if tensor_parallel_size > 1 else ""
    # device_map="auto" would size the model by its packed files, and compressed-tensors' lazy decompression fails
    # once a model spans devices (hubpub.device_map): the snippet places it by its decompressed size and
    # decompresses it as it loads.
    transformers = f'''from accelerate import infer_auto_device_map, init_empty_weights
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, CompressedTensorsConfig

model_id = "{repo}"
tokenizer = AutoTokenizer.from_pretrained(model_id)
# The weights are decompressed to the model's dtype as it loads: place the model by that size, not the files'.
config = AutoConfig.from_pretrained(model_id)
del config.quantization_config
with init_empty_weights():
    empty = AutoModelForCausalLM.from_config(config, dtype=config.dtype)
empty.tie_weights()
device_map = infer_auto_device_map(empty, no_split_module_classes=empty._no_split_modules)
model = AutoModelForCausalLM.from_pretrained(
    model_id, dtype="auto", device_map=device_map, quantization_config=CompressedTensorsConfig(dequantize=True)
)

messages = [{{"role": "user", "content": {json.dumps(prompt)}}}]
inputs = tokenizer.apply_chat_template(
    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
).to(model.device)
outputs = model.generate(**inputs, max_new_tokens=64, do_sample=False)
print(tokenizer.decode(outputs[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True))'''
    vllm = f'''from vllm import LLM, SamplingParams

# vLLM starts worker processes that import this file again: keep the work under the main guard.
if __name__ == "__main__":
    llm = LLM(model="{repo}"{parallel})
    messages = [{{"role": "user", "content": {json.dumps(prompt)}}}]
    outputs = llm.chat(messages, SamplingParams(temperature=0, max_tokens=64))
    print(outputs[0].outputs[0].text)'''
    llmcompressor = f'''# Apply this release's recipe to the base (or to your own fine-tune of it).
from huggingface_hub import hf_hub_download
from llmcompressor import oneshot
from transformers import AutoModelForCausalLM

recipe = hf_hub_download("{repo}", "recipe.yaml")
model = AutoModelForCausalLM.from_pretrained("{release.base_model}", dtype="auto")
oneshot(model=model, recipe=recipe)
model.save_pretrained("{repo.split("/")[-1]}", save_compressed=True)'''
    return {
        "transformers": transformers,
        "vllm": vllm,
        "llmcompressor": llmcompressor,
        "reproduce": _reproduce(release, manifest),
    }


def _reproduce(release: ReleaseSpec, manifest: Manifest) -> str:
    source = release.source
    if source is not None and source.gguf_file:
        digest = manifest.source_sha256.get(source.gguf_file, "")
        load = (
            f"# The base weights came from {source.gguf_file} (sha256 {digest[:16]}…), dequantized to BF16.\n"
            f'model = AutoModelForCausalLM.from_pretrained(".", gguf_file="{source.gguf_file}", dtype=torch.bfloat16)\n'
            "model.hf_quantizer = None\n"
            "del model.config.quantization_config\n"
            'model.save_pretrained("base")\n'
            'model = AutoModelForCausalLM.from_pretrained("base", dtype="auto")'
        )
        imports = "import torch\nfrom llmcompressor import oneshot\nfrom transformers import AutoModelForCausalLM"
    elif source is not None:
        load = 'model = AutoModelForCausalLM.from_pretrained("base", dtype="auto")  # the local base checkpoint'
        imports = "from llmcompressor import oneshot\nfrom transformers import AutoModelForCausalLM"
    else:
        revision = manifest.base_revision or "main"
        load = (
            f'model = AutoModelForCausalLM.from_pretrained("{release.base_model}", revision="{revision}", dtype="auto")'
        )
        imports = "from llmcompressor import oneshot\nfrom transformers import AutoModelForCausalLM"
    recipe = yaml.safe_dump(manifest.recipe, sort_keys=False)
    data = ""
    if manifest.calibration is not None and release.calibration is not None:
        data = (
            f"\n# Calibration: {_calibration_text(manifest.calibration)}; shuffle with the seed, take the samples,"
            " tokenize with truncation, and pass them as `dataset=`."
        )
    name = release.repo_id.split("/")[-1]
    return (
        f'{imports}\n\n{load}\nrecipe = """\n{recipe}"""{data}\n'
        f'oneshot(model=model, recipe=recipe)\nmodel.save_pretrained("{name}", save_compressed=True)'
    )


# -- metadata ---------------------------------------------------------------------------------


def _metadata(release: ReleaseSpec, manifest: Manifest, facts: dict[str, Any]) -> dict[str, Any]:
    from huggingface_hub import EvalResult

    scheme = SCHEMES[release.scheme]
    tags = [scheme.name.lower().replace("_", "-"), "llmcompressor", "compressed-tensors", "quantized", *release.tags]
    if vllm_loaded(manifest.stages.get("vllm")):
        tags.append("vllm")
    metadata: dict[str, Any] = {
        "base_model": release.base_model,
        "base_model_relation": "quantized",
        "license": facts["license"],
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": list(dict.fromkeys(tags)),
    }
    calibration = release.calibration
    if manifest.calibration is not None and calibration is not None and not calibration.is_local:
        metadata["datasets"] = [calibration.dataset]
    evaluated = manifest.stages.get("evaluate")
    if evaluated is not None and evaluated.status == "done":
        metadata["model_name"] = release.repo_id.split("/")[-1]
        metadata["eval_results"] = [
            EvalResult(
                task_type="text-generation",
                dataset_type=row["task"],
                dataset_name=row["task"],
                metric_type=row["metric"],
                metric_value=row["quantized"],
                verified=False,
            )
            for row in evaluated.metrics["rows"]
        ]
    return metadata


def lint_metadata(metadata: dict[str, Any]) -> list[str]:
    """What the Hub would reject in the card's metadata: empty or invalid fields, unknown licenses."""
    problems = []
    for key, value in metadata.items():
        if value in (None, "", [], {}):
            problems.append(f"{key} is empty")
    if metadata.get("license") not in HUB_LICENSES:
        problems.append(f"license {metadata.get('license')!r} is not a Hub license id (set `license:` in the spec)")
    if metadata.get("license") == "unknown":
        problems.append("the license is unknown: set `license:` in the spec")
    for tag in metadata.get("tags", []):
        if not isinstance(tag, str) or not re.fullmatch(r"[\w.+-]{1,64}", tag):
            problems.append(f"tag {tag!r} is not a valid Hub tag")
    return problems
