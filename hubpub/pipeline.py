"""Runs the stages of one release in order: fingerprints, cache hits, resume, the manifest.

Each stage's output lives in `releases/<repo>/stages/<stage>-<fingerprint>/` and counts as done
only once its `result.json` exists, which is written last. A run killed at any point leaves at
most one incomplete folder, which the next run clears and redoes.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol

from hubpub import stagelog
from hubpub.errors import HubpubError
from hubpub.evalresults import FOLDER as EVAL_RESULTS
from hubpub.hashing import HashCache, fingerprint, sha256_file
from hubpub.hub.store import front_matter
from hubpub.hubclient import HubTarget, implicit_token_guarded
from hubpub.manifest import MANIFEST_NAME, Manifest, StageResult, ci_run_url
from hubpub.measure import measured
from hubpub.placement import CPU, Placement
from hubpub.resources import Machine, ResourcePlan
from hubpub.sharedcache import cache_dir as shared_cache_dir
from hubpub.spec import ReleaseSpec, load_spec
from hubpub.stages import STAGE_ORDER, card, evaluate, preflight, publish, quantize, resolve, verify, vllm
from hubpub.stages.context import StageContext, StageOutput
from hubpub.stages.publish import PublishResult
from hubpub.version import __version__
from hubpub.vllm import VLLM_VERSION
from hubpub.vllm.cpu_rules import VLLM_CPU_VERSION
from hubpub.vllm.environment import environment_fingerprint
from hubpub.warm import start_fork_server

logger = logging.getLogger(__name__)

TOOLS = ("llmcompressor", "compressed-tensors", "transformers", "torch", "lm-eval", "huggingface-hub")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
VLLM_RULES_ID = f"vllm-{VLLM_VERSION}+cpu-{VLLM_CPU_VERSION}"


@dataclass(frozen=True)
class StageEvent:
    """What a stage of a variant is doing: `event` is started, progress, done, cached, skipped or failed."""

    variant: str
    stage: str
    event: str
    log: Path
    """The stage's log file (hubpub.stagelog)."""
    result: StageResult | None = None
    """When the stage has finished: its result, with the metrics that the summary shows."""
    error: str | None = None
    progress: tuple[str, int, int] | None = None
    """With `progress` events: what is counted, how many are done and the total (a progress bar's)."""


Progress = Callable[[StageEvent], None]


class _Stage(Protocol):
    def run(self, ctx: StageContext) -> StageOutput: ...


_RUNNERS: dict[str, _Stage] = {
    "resolve": resolve,
    "preflight": preflight,
    "quantize": quantize,
    "verify": verify,
    "vllm": vllm,
    "evaluate": evaluate,
}


@dataclass(frozen=True)
class PublishOptions:
    target: HubTarget
    dry_run: bool = False
    roundtrip: bool = True


@dataclass(frozen=True)
class ReleaseOutcome:
    variant: str
    repo_id: str
    staged_dir: Path
    manifest_path: Path
    stages: dict[str, StageResult]
    published: PublishResult | None = None
    collection: dict[str, Any] | None = None
    """What syncing the family's Hub collection did after publishing (hubpub.collection.CollectionSync)."""
    logs: Path | None = None
    """The folder of the stage logs: what other libraries printed and the children's output, one file per stage."""
    vllm_environment: str | None = None
    """The vLLM Python the vllm stage used and where it came from (`… (found from the current folder upwards)`),
    None when there was none."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "repo_id": self.repo_id,
            "staged_dir": str(self.staged_dir),
            "manifest": str(self.manifest_path),
            "logs": str(self.logs) if self.logs else None,
            "stages": {name: result.status for name, result in self.stages.items()},
            "published": self.published.as_dict() if self.published else None,
            "collection": self.collection,
            "vllm_environment": self.vllm_environment,
        }


def tool_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"hubpub": __version__}
    for name in TOOLS:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def release_dir(workdir: Path, release: ReleaseSpec) -> Path:
    return workdir / "releases" / release.repo_id.replace("/", "__")


class ReleaseRun:
    """One variant going through the stages: `prepare` runs them up to the card, `finish` the rest.

    A family is prepared variant by variant before any card is rendered, so every card can state
    its siblings' measured sizes.
    """

    def __init__(
        self,
        spec_path: Path,
        release: ReleaseSpec,
        *,
        workdir: Path,
        force: frozenset[str] = frozenset(),
        progress: Progress | None = None,
        vllm_python: str | None = None,
        resources: ResourcePlan | None = None,
        cache_dir: Path | None = None,
        capture: bool = False,
        find_vllm: bool = True,
    ) -> None:
        """`capture` sends what other libraries print during a stage to the stage's log alone (hubpub.stagelog).
        Without `find_vllm`, only $HUBPUB_VLLM_PYTHON names the vLLM environment (a job on the embedded Hub)."""
        self.spec_path = spec_path
        self.capture = capture
        self.resources = resources
        chosen = _vllm_python(vllm_python, release, spec_path, find=find_vllm)
        self.vllm_python = chosen[0] if chosen is not None else None
        self.vllm_environment = f"{chosen[0]} ({chosen[1]})" if chosen is not None else None
        self.release = release
        self.root = release_dir(workdir, release)
        self.cache_dir = shared_cache_dir(workdir, cache_dir)
        self.hashes = HashCache(self.cache_dir / "sha256.json")
        self.versions = tool_versions()
        self.force = force
        self.notify: Progress = progress or (lambda _event: None)
        self.results: dict[str, StageResult] = {}

    def outcome(self, staged: Path | None = None, published: PublishResult | None = None) -> ReleaseOutcome:
        folder = staged or self.root
        return ReleaseOutcome(
            self.release.variant,
            self.release.repo_id,
            folder,
            folder / MANIFEST_NAME,
            self.results,
            published,
            logs=self.logs,
            vllm_environment=self.vllm_environment,
        )

    def manifest(self) -> Manifest:
        return _manifest(self.spec_path, self.release, self.versions, self.results, self.resources)

    def prepare(self) -> None:
        for stage in STAGE_ORDER[: STAGE_ORDER.index("card")]:
            self._step(stage, functools.partial(self._prepare_stage, stage))

    def _prepare_stage(self, stage: str) -> StageResult:
        if stage == "evaluate" and self.release.evaluation is None:
            return StageResult(stage=stage, status="skipped", fingerprint="", reason="the spec asks for no evaluation")
        if stage == "vllm" and self.release.verify.vllm == "off":
            return StageResult(stage=stage, status="skipped", fingerprint="", reason="verify.vllm is off")
        return _run_cached(
            stage,
            self.spec_path,
            self.release,
            self.root,
            self.cache_dir,
            self.hashes,
            self.versions,
            self.results,
            self.force,
            self.vllm_python,
            self.resources.placement(stage) if self.resources else CPU,
        )

    def finish(self, family: list[ReleaseRun], publishing: PublishOptions | None) -> ReleaseOutcome:
        card_dir = self._step("card", lambda: self._card(family))
        staged = _stage_folder(self.root, Path(self.results["quantize"].outputs["checkpoint"]), card_dir)
        self.manifest().write(staged)
        published: list[PublishResult] = []

        def publish_step() -> StageResult:
            placement = self.resources.placement("publish") if self.resources else CPU
            result, outcome = _publish(staged, self.release, publishing, self.force, placement)
            if outcome is not None:
                published.append(outcome)
            return result

        self._step("publish", publish_step)
        return self.outcome(staged, published[0] if published else None)

    @property
    def logs(self) -> Path:
        """The folder of this variant's stage logs."""
        return self.root / stagelog.FOLDER

    def _step(self, stage: str, work: Callable[[], Any]) -> Any:
        log = stagelog.log_path(self.root, stage)
        event = functools.partial(StageEvent, self.release.variant, stage, log=log)

        def progress(what: str, done: int, total: int) -> None:
            self.notify(event("progress", progress=(what, done, total)))

        self.notify(event("started"))
        try:
            with stagelog.StageLog(log, capture=self.capture, progress=progress):
                produced = work()
        except HubpubError as error:
            failed = StageResult(stage=stage, status="failed", fingerprint="", reason=str(error))
            self.results[stage] = failed
            self.notify(event("failed", result=failed, error=str(error)))
            self.manifest().write(self.root)
            raise
        if isinstance(produced, StageResult):
            self.results[stage] = produced
        self.notify(event(self.results[stage].status, result=self.results[stage]))
        return produced

    def _card(self, family: list[ReleaseRun]) -> Path:
        """Render the card, and run its snippet unless this exact card already passed on these files."""
        base_dir = Path(self.results["resolve"].outputs["base_dir"])
        rendered = card.run(
            self.release,
            self.manifest(),
            [member.manifest() for member in family],
            base_bytes=self.results["preflight"].metrics["checkpoint_bytes"],
            base_license=_base_license(base_dir),
            siblings=load_spec(self.spec_path).releases,
        )
        checkpoint = Path(self.results["quantize"].outputs["checkpoint"])
        key = fingerprint(
            {
                "stage": "card",
                "text": rendered.text,
                "checkpoint": self.hashes.tree(checkpoint),
                **({"eval_results": rendered.eval_results} if rendered.eval_results else {}),
            }
        )
        folder = self.root / "stages" / f"card-{key[:16]}"
        result_file = folder / "result.json"
        if result_file.is_file() and "card" not in self.force:
            self.results["card"] = StageResult.model_validate_json(result_file.read_text(encoding="utf-8")).model_copy(
                update={"status": "cached"}
            )
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        (folder / "README.md").write_text(rendered.text, encoding="utf-8")
        for path, text in rendered.eval_results.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text, encoding="utf-8")
        with measured() as measurement:
            snippet = card.run_snippet(rendered.text, self.release.repo_id, checkpoint, folder)
            vllm_snippet = card.run_vllm_snippet(
                rendered.text, self.release.repo_id, checkpoint, folder, self.vllm_python
            )
        result = StageResult(
            stage="card",
            status="done",
            fingerprint=key,
            seconds=round(measurement.seconds, 3),
            peak_rss_mb=round(measurement.peak_rss_mb, 1),
            peak_gpu_mb=measurement.rounded_gpu(),
            metrics={
                "readme_sha256": sha256_file(folder / "README.md"),
                "metadata": rendered.metadata,
                "snippet": snippet,
                "vllm_snippet": vllm_snippet,
            },
            ci_run_url=ci_run_url(),
        )
        result_file.write_text(result.model_dump_json(indent=2), encoding="utf-8")
        self.results["card"] = result
        return folder


def check_resources(items: list[tuple[Path, ReleaseSpec]], workdir: Path) -> dict[str, ResourcePlan]:
    """The resource plan of each variant (by repo id), checked before anything is downloaded.

    A GPU release (its runner declares GPUs, or this machine has an NVIDIA GPU and the spec declares no CPU
    run) needs usable CUDA here: it never falls back to the CPU (CudaUnavailableError). Each variant is checked
    against its declared runner and against this machine; any refusal raises RunnerTooSmallError naming the
    stage. Plans that cannot be estimated (an unknown architecture) pass.
    """
    from hubpub.resources import declared_machine, detect_machine, release_resources, with_base_shapes

    plans: dict[str, ResourcePlan] = {}
    detected: Machine | None = None
    cuda = _CudaCheck()
    for _, release, shape, first_of_base in with_base_shapes(items):
        runner = release.runner
        # The declared runner first: a runner too small is the spec's problem on any machine.
        if runner is not None:
            _refuse(release_resources(release, declared_machine(runner), shape, first_of_base=first_of_base))
        cuda.check(release)
        if detected is None:
            detected = detect_machine(workdir, cpu_offload=bool(runner and runner.cpu_offload))
            detected = replace(detected, disk_bytes=_with_workdir_files(detected.disk_bytes, workdir))
        machine = replace(detected, gpus=()) if runner is not None and runner.cpu_run else detected
        plan = _refuse(release_resources(release, machine, shape, first_of_base=first_of_base))
        plans[release.repo_id] = plan
        if not plan.estimable:
            logger.warning("%s: resources not checked: %s", release.variant, plan.reason)
    return plans


class _CudaCheck:
    """Whether a release needs CUDA, and whether CUDA is usable here: each asked at most once per run, the
    latter in a short-lived interpreter (hubpub.resources.runner.cuda_usable)."""

    @functools.cached_property
    def gpu_found(self) -> str | None:
        from hubpub.resources.runner import nvidia_gpu_found

        return nvidia_gpu_found()

    @functools.cached_property
    def usable(self) -> tuple[bool, str]:
        from hubpub.resources.runner import cuda_usable

        return cuda_usable()

    def check(self, release: ReleaseSpec) -> None:
        from hubpub.errors import CudaUnavailableError

        runner = release.runner
        if runner is not None and runner.cpu_run:
            return
        if runner is not None and runner.gpus:
            gpu = f"the spec's runner declares {runner.gpus} GPU(s)"
        elif self.gpu_found is not None:
            gpu = f"this machine has an NVIDIA GPU ({self.gpu_found})"
        else:
            return
        usable, found = self.usable
        if not usable:
            raise CudaUnavailableError.at_start(release.variant, gpu, found)


def _refuse(plan: ResourcePlan) -> ResourcePlan:
    from hubpub.errors import RunnerTooSmallError

    if plan.refusals:
        raise RunnerTooSmallError(plan.variant, plan.machine, plan.refusals)
    return plan


def _with_workdir_files(free: int | None, workdir: Path) -> int | None:
    """Free disk plus what the work folder already holds: a re-run reuses those files rather than writing them again."""
    if free is None or not workdir.is_dir():
        return free
    return free + sum(path.stat().st_size for path in workdir.rglob("*") if path.is_file() and not path.is_symlink())


def run_releases(
    items: list[tuple[Path, ReleaseSpec]],
    *,
    workdir: Path,
    force: frozenset[str] = frozenset(),
    publishing: PublishOptions | None = None,
    progress: Progress | None = None,
    vllm_python: str | None = None,
    cache_dir: Path | None = None,
    capture: bool = False,
    find_vllm: bool = True,
) -> list[ReleaseOutcome]:
    """Run the selected variants: every one up to its card first, then cards and publishing.

    Every variant's resource plan is checked first, so a runner too small for any of them stops the run
    before anything is downloaded. `find_vllm` is as for ReleaseRun.
    """
    # Around the whole run, so the fork servers and every child start under it: libraries that read the Hub
    # there (datasets, lm-eval) send no token that Hub may not have.
    with implicit_token_guarded():
        return _run_releases(items, workdir, force, publishing, progress, vllm_python, cache_dir, capture, find_vllm)


def _run_releases(
    items: list[tuple[Path, ReleaseSpec]],
    workdir: Path,
    force: frozenset[str],
    publishing: PublishOptions | None,
    progress: Progress | None,
    vllm_python: str | None,
    cache_dir: Path | None,
    capture: bool,
    find_vllm: bool,
) -> list[ReleaseOutcome]:
    plans = check_resources(items, workdir)
    runs = [
        ReleaseRun(
            path,
            item,
            workdir=workdir,
            force=force,
            progress=progress,
            vllm_python=vllm_python,
            resources=plans.get(item.repo_id),
            cache_dir=cache_dir,
            capture=capture,
            find_vllm=find_vllm,
        )
        for path, item in items
    ]
    for run in runs:
        run.prepare()
    return [run.finish([member for member in runs if member.spec_path == run.spec_path], publishing) for run in runs]


def _vllm_python(
    explicit: str | None, release: ReleaseSpec, spec_path: Path, *, find: bool = True
) -> tuple[Path, str] | None:
    """--vllm-python, else $HUBPUB_VLLM_PYTHON, else the spec's verify.vllm_python (relative to the spec), else
    the nearest `.venv-vllm` from the spec's folder or the current folder upwards, or beside hubpub's own
    environment; with where it came from, in words. Without `find`, $HUBPUB_VLLM_PYTHON alone."""
    from hubpub.vllm import VLLM_PYTHON_ENV, chosen_python

    if release.verify.vllm == "off":
        return None
    if not find:
        return chosen_python(None)
    if explicit is None and not os.environ.get(VLLM_PYTHON_ENV) and release.verify.vllm_python:
        interpreter = spec_path.parent / Path(release.verify.vllm_python).expanduser()
        return chosen_python(interpreter, origin=f"verify.vllm_python in {spec_path}")
    return chosen_python(explicit, search_from=[spec_path.parent])


def _base_license(base_dir: Path) -> str | None:
    readme = base_dir / "README.md"
    if not readme.is_file():
        return None
    value = (front_matter(readme.read_text(encoding="utf-8", errors="replace")) or {}).get("license")
    return value if isinstance(value, str) else None


def _publish(
    staged: Path,
    release: ReleaseSpec,
    publishing: PublishOptions | None,
    force: frozenset[str],
    placement: Placement = CPU,
) -> tuple[StageResult, PublishResult | None]:
    if publishing is None:
        return StageResult(stage="publish", status="skipped", fingerprint="", reason="--no-push"), None
    with measured() as measurement:
        outcome = publish.run(
            staged,
            publishing.target,
            private=release.push.private,
            tag=release.hub_tag,
            dry_run=publishing.dry_run,
            force="publish" in force,
            roundtrip=publishing.roundtrip,
            placement=placement,
        )
    result = StageResult(
        stage="publish",
        status="done",
        fingerprint="",
        seconds=round(measurement.seconds, 3),
        peak_rss_mb=round(measurement.peak_rss_mb, 1),
        peak_gpu_mb=measurement.rounded_gpu(),
        metrics=outcome.as_dict(),
    )
    return result, outcome


def _inputs(
    stage: str,
    release: ReleaseSpec,
    hashes: HashCache,
    versions: dict[str, str | None],
    done: dict[str, StageResult],
    vllm_python: Path | None = None,
) -> tuple[dict[str, Any], bool]:
    """What a stage's output depends on, and whether it must run every time (a moving Hub revision)."""
    tools = {"hubpub": versions["hubpub"]}
    if stage == "resolve":
        source = release.source
        if source is not None and source.gguf_file:
            return {"gguf_sha256": hashes.sha256(source.path / source.gguf_file), **tools}, False
        if source is not None:
            return {"local": hashes.tree(source.path), **tools}, False
        revision = release.base_revision or "main"
        return {"hub": release.base_model, "revision": revision, **tools}, not _FULL_SHA.match(revision)
    source_hashes = done["resolve"].metrics["source_sha256"]
    if stage == "preflight":
        return {
            "source": source_hashes,
            "scheme": release.scheme,
            "algorithm": release.algorithm,
            "group_size": release.effective_group_size,
            "targets": release.targets,
            "ignore": release.ignore,
            "facts": 2,
            **tools,
        }, False
    if stage == "quantize":
        calibration = release.calibration
        calibration_inputs = None
        if calibration is not None and release.scheme_info.needs_calibration(release.algorithm):
            calibration_inputs = calibration.model_dump(mode="json")
            if calibration.is_local:
                calibration_inputs["sha256"] = hashes.sha256(Path(calibration.dataset))
        return {
            "source": source_hashes,
            "recipe": release.recipe(),
            "calibration": calibration_inputs,
            **versions,
        }, False
    if stage == "evaluate":
        evaluation = release.evaluation
        assert evaluation is not None
        return {
            "checkpoint": hashes.tree(Path(done["quantize"].outputs["checkpoint"])),
            "source": source_hashes,
            "evaluation": evaluation.model_dump(mode="json", exclude={"include_path"}),
            "task_files": [hashes.tree(folder) for folder in evaluation.include_path],
            **versions,
        }, False
    if stage == "verify":
        return {
            "checkpoint": hashes.tree(Path(done["quantize"].outputs["checkpoint"])),
            "verify": release.verify.model_dump(mode="json", exclude={"vllm", "vllm_python"}),
            **versions,
        }, False
    if stage == "vllm":
        return {
            "checkpoint": hashes.tree(Path(done["quantize"].outputs["checkpoint"])),
            "rules": VLLM_RULES_ID,
            "mode": release.verify.vllm,
            "vllm_python": str(vllm_python) if vllm_python else None,
            # A hubpub-made environment rebuilt from other pins is another vLLM, though its path is the same.
            "vllm_environment": environment_fingerprint(vllm_python),
            "prompts": list(release.verify.prompts),
            "max_new_tokens": release.verify.max_new_tokens,
            "verified": done["verify"].fingerprint,
            **tools,
        }, False
    raise AssertionError(f"no inputs defined for stage {stage}")


def _run_cached(
    stage: str,
    spec_path: Path,
    release: ReleaseSpec,
    root: Path,
    cache_dir: Path,
    hashes: HashCache,
    versions: dict[str, str | None],
    done: dict[str, StageResult],
    force: frozenset[str],
    vllm_python: Path | None,
    placement: Placement = CPU,
) -> StageResult:
    inputs, volatile = _inputs(stage, release, hashes, versions, done, vllm_python)
    if placement.on_gpu:
        # Other GPUs, or another tensor parallel size, make another load: its result is not this one's.
        inputs["placement"] = placement.as_request()
    key = fingerprint({"stage": stage, **inputs})
    folder = root / "stages" / f"{stage}-{key[:16]}"
    result_file = folder / "result.json"
    if result_file.is_file() and stage not in force and not volatile:
        cached = StageResult.model_validate_json(result_file.read_text(encoding="utf-8"))
        logger.debug("%s: %s is cached", release.variant, stage)
        return cached if cached.status == "skipped" else cached.model_copy(update={"status": "cached"})
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    # Started at the first stage with real work (not on a re-run that reuses everything), so the fork servers'
    # imports overlap that work.
    start_fork_server()
    ctx = StageContext(
        release=release,
        spec_path=spec_path,
        cache_dir=cache_dir,
        output_dir=folder,
        previous=dict(done),
        hashes=hashes,
        vllm_python=vllm_python,
        placement=placement,
    )
    logger.debug("%s: %s started", release.variant, stage)
    with measured() as measurement:
        output = _RUNNERS[stage].run(ctx)
    result = StageResult(
        stage=stage,
        status="skipped" if output.skipped else "done",
        fingerprint=key,
        reason=output.skipped,
        ci_run_url=ci_run_url(),
        seconds=round(measurement.seconds, 3),
        peak_rss_mb=round(measurement.peak_rss_mb, 1),
        peak_gpu_mb=measurement.rounded_gpu(),
        metrics=output.metrics,
        outputs=output.outputs,
    )
    partial = result_file.with_name(f"result.json.{os.getpid()}.partial")
    partial.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    partial.replace(result_file)
    logger.debug("%s: %s done in %.1f s", release.variant, stage, measurement.seconds)
    return result


def _stage_folder(root: Path, checkpoint: Path, card_dir: Path) -> Path:
    """The repo folder to publish: the checkpoint's files (hard-linked when possible) and the card."""
    staged = root / "staged"
    for leftover in [*root.glob("staged.*.partial"), *root.glob("staged.*.old")]:
        shutil.rmtree(leftover, ignore_errors=True)
    partial = root / f"staged.{os.getpid()}.partial"
    partial.mkdir(parents=True)
    shutil.copyfile(card_dir / "README.md", partial / "README.md")
    if (card_dir / EVAL_RESULTS).is_dir():
        shutil.copytree(card_dir / EVAL_RESULTS, partial / EVAL_RESULTS)
    for path in sorted(checkpoint.rglob("*")):
        target = partial / path.relative_to(checkpoint)
        if path.is_dir():
            target.mkdir(exist_ok=True)
            continue
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
    previous = root / f"staged.{os.getpid()}.old"
    if staged.exists():
        staged.replace(previous)
    partial.replace(staged)
    shutil.rmtree(previous, ignore_errors=True)
    return staged


def _manifest(
    spec_path: Path,
    release: ReleaseSpec,
    versions: dict[str, str | None],
    results: dict[str, StageResult],
    resources: ResourcePlan | None = None,
) -> Manifest:
    # The manifest describes how the staged files were made, so a re-run that reuses every stage
    # writes the same manifest and publishing it again changes nothing.
    recorded = {
        name: result.model_copy(
            update={"status": "done" if result.status == "cached" else result.status, "outputs": {}}
        )
        for name, result in results.items()
        if name != "publish"
    }
    resolved = recorded.get("resolve")
    quantized = recorded.get("quantize")
    return Manifest(
        hubpub_version=__version__,
        spec_file=spec_path.name,
        spec_sha256=sha256_file(spec_path),
        variant=release.variant,
        family=release.family,
        repo_id=release.repo_id,
        release=_portable(
            release.model_dump(mode="json", exclude={"verify": {"vllm_python"}}), spec_path.parent.resolve()
        ),
        base_model=release.base_model,
        base_revision=(resolved.metrics.get("revision") if resolved else None) or release.base_revision,
        source_sha256=resolved.metrics["source_sha256"] if resolved and resolved.status != "failed" else {},
        recipe=release.recipe(),
        calibration=quantized.metrics.get("calibration") if quantized and quantized.status != "failed" else None,
        versions=versions,
        device=quantized.metrics.get("device") if quantized and quantized.status != "failed" else None,
        ci_run_url=quantized.ci_run_url if quantized else ci_run_url(),
        stages=recorded,
        # The estimates, beside the stages' measured peaks; the machine's free RAM and disk change between runs.
        resources=resources.recorded() if resources is not None and resources.estimable else None,
    )


def _portable(value: Any, spec_dir: Path) -> Any:
    """Absolute local paths become relative to the spec file, so no machine's layout is published."""
    if isinstance(value, dict):
        return {key: _portable(item, spec_dir) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item, spec_dir) for item in value]
    if isinstance(value, str) and os.path.isabs(value) and Path(value).exists():
        return os.path.relpath(value, spec_dir)
    return value
