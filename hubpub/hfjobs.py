"""Releases on Hugging Face Jobs: one job per variant, each running `hubpub release SPEC --variant V` on the
flavor its spec names, with the token as a job secret.

The job needs the spec and the small files beside it (calibration data, lm-eval tasks, a card template),
which do not exist on Hugging Face's machines: they travel as a spec bundle, compressed and base64-encoded,
in one environment value (HUBPUB_SPEC_BUNDLE; its format and limits live in hubpub.hub.specbundle); the job
unpacks it into its own folder and releases from there. A job reads the spec's folder alone, on any Hub:
the base comes from the Hub, never from a local checkpoint folder (`source.path`).

Each variant is planned on its flavor's machine (hubpub.resources.flavors) before anything is submitted: a flavor
too small for a stage is a SpecError at its `jobs.flavor` line that names a flavor that fits. A declared `runner:`
only narrows the flavor; one that claims more than the flavor has is refused at its line. On a GPU flavor with
`verify.vllm` not off, the job first builds hubpub's vLLM GPU environment (`release --build-vllm-env gpu`).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubpub.errors import FlavorTooSmallError, JobError, SpecError, SpecProblem, UsageError
from hubpub.hub import BUNDLE_MAX_ENCODED, HubError, decode_spec_bundle, encode_spec_bundle
from hubpub.resources.flavors import Flavor, by_price, flavor_of
from hubpub.resources.runner import GB, Machine
from hubpub.spec import ReleaseSpec, SpecFile, field_label, local_paths, spec_sections
from hubpub.yamlsource import Located, PathKey, load_yaml

if TYPE_CHECKING:
    from hubpub.hubclient import SourceHub
    from hubpub.resources import ModelShape, ResourcePlan

logger = logging.getLogger(__name__)

BUNDLE_ENV = "HUBPUB_SPEC_BUNDLE"
MAX_BUNDLE_CHARS = BUNDLE_MAX_ENCODED
"""One environment value: below Linux's limit of 128 KiB for a single environment string."""
LAST_LINES = 25
POLL_SECONDS = 2.0
LineSink = Callable[[str, str], None]
"""Receives (variant, log line) as jobs print them, from several threads at once."""


@dataclass(frozen=True)
class JobOutcome:
    """How one variant's job ended: its stage (COMPLETED, ERROR, CANCELED…), link and last log lines."""

    variant: str
    repo_id: str
    repo_url: str
    job_id: str
    url: str
    flavor: str
    stage: str
    message: str | None
    last_lines: tuple[str, ...]

    @property
    def succeeded(self) -> bool:
        return self.stage == "COMPLETED"

    def as_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "repo_id": self.repo_id,
            "repo_url": self.repo_url,
            "job_id": self.job_id,
            "job_url": self.url,
            "flavor": self.flavor,
            "stage": self.stage,
            "message": self.message,
            "last_lines": list(self.last_lines),
        }


class JobsFailedError(JobError):
    """At least one job did not complete; the message shows every job's outcome and each failure's last lines."""

    def __init__(self, outcomes: list[JobOutcome]) -> None:
        self.outcomes = outcomes
        failed = [outcome for outcome in outcomes if not outcome.succeeded]
        lines = [f"{len(failed)} of {len(outcomes)} Hugging Face jobs failed:"]
        for outcome in outcomes:
            reason = f" ({outcome.message})" if outcome.message else ""
            lines.append(f"- {outcome.variant}: {outcome.stage}{reason}, {outcome.url}")
        for outcome in failed:
            lines.append(f"last log lines of {outcome.variant}:")
            lines.extend(f"  [{outcome.variant}] {line}" for line in outcome.last_lines)
        super().__init__("\n".join(lines))


# -- the spec bundle ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpecBundle:
    spec: str
    """The spec file's path inside the bundle (relative to the spec's folder)."""
    files: dict[str, bytes]

    def encoded(self) -> str:
        return encode_spec_bundle(self.spec, self.files)


def bundle_spec(spec_file: SpecFile) -> SpecBundle:
    """The spec file and the local files it names, laid out as they are in the spec's folder.

    A job reads nothing else, whichever Hub runs it: a path outside the spec's folder (absolute, climbing out
    with '..', or a link that leads out; a local checkpoint's `source.path` too) is a UsageError.
    """
    spec_path = Path(os.path.abspath(spec_file.path))
    root = spec_path.parent
    real_root = root.resolve()
    files: dict[str, bytes] = {spec_path.name: spec_path.read_bytes()}
    outside: list[str] = []
    for written in sorted(_raw_paths(spec_path)):
        path = Path(os.path.normpath(root / written))
        if _absolute(written) or not _within(path, root) or not _within(path.resolve(), real_root):
            outside.append(written)
            continue
        members = sorted(path.rglob("*")) if path.is_dir() else [path]
        for member in members:
            if "__pycache__" in member.parts or not (member.is_file() or member.is_symlink()):
                continue
            if not _within(member.resolve(), real_root):
                outside.append(str(member.relative_to(root)))
            elif member.is_file():
                files[member.relative_to(root).as_posix()] = member.read_bytes()
    if outside:
        raise UsageError(
            f"{spec_file.path}: {', '.join(sorted(set(outside)))} is outside the spec's folder, which a job cannot"
            " read (it gets the spec's folder alone): take the base from the Hub (drop `source`) and use relative"
            " paths beside the spec"
        )
    return SpecBundle(spec_path.name, files)


def _raw_paths(spec_path: Path) -> set[str]:
    """Every local path the spec's shared keys and variants name, as written."""
    sections = spec_sections(load_yaml(spec_path).data)
    return {value for _, section in sections for _, value in local_paths(section)}


def _absolute(path: str) -> bool:
    return path.startswith(("/", "~"))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def unpack_bundle(encoded: str, folder: Path) -> Path:
    """Write a spec bundle into `folder` (emptied first); returns the spec file's path there.

    The bundle is checked as the embedded Hub checks it at submission (hubpub.hub's decode_spec_bundle:
    sizes after decompression, the number of files, paths inside, links only to relative targets inside).
    """
    try:
        bundle = decode_spec_bundle(encoded)
    except HubError as error:
        raise UsageError(f"${BUNDLE_ENV}: {error.message}") from None
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, content in bundle.files.items():
        target = folder.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for name, destination in bundle.links.items():
        target = folder.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(destination)
    return folder.joinpath(*bundle.spec.split("/"))


# -- running the jobs -----------------------------------------------------------------------------
@dataclass
class _Running:
    release: ReleaseSpec
    job_id: str
    namespace: str
    url: str
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LAST_LINES))
    thread: threading.Thread | None = None
    final: Any = None


def job_command(release: ReleaseSpec, spec_in_bundle: str, hub: str, *, build_vllm: bool = False) -> list[str]:
    """What the job runs: hubpub installed by uvx, then the same `hubpub release` for one variant; with
    `build_vllm`, that release first makes hubpub's vLLM GPU environment (as `hubpub vllm-env --gpu`)."""
    assert release.jobs is not None
    return [
        "uvx",
        "--from",
        release.jobs.install,
        "hubpub",
        "release",
        spec_in_bundle,
        "--variant",
        release.variant,
        "--hub",
        hub,
        "--spec-bundle-env",
        BUNDLE_ENV,
        *((BUILD_VLLM_ENV_OPTION, "gpu") if build_vllm else ()),
    ]


def run_release_jobs(
    spec_files: list[SpecFile],
    variant: str | None,
    *,
    endpoint: str,
    hub_label: str,
    token: str,
    on_line: LineSink,
    poll_seconds: float = POLL_SECONDS,
) -> list[JobOutcome]:
    """Submit one job per selected variant, stream their logs to `on_line`, wait, and return every outcome.

    Everything is checked before the first submission: each variant names a Jobs flavor, its spec bundle
    fits one environment value and the bundle limits, the spec names no path outside its own folder, and
    every stage of its resource plan fits its flavor's machine (a FlavorTooSmallError at the flavor's line).
    Raises JobsFailedError when any job does not complete; on KeyboardInterrupt the jobs started are canceled.
    """
    from hubpub.hubclient import SourceHub

    chosen = [(spec_file, release) for spec_file in spec_files for release in spec_file.select(variant)]
    require_jobs(chosen)
    bundles = {spec_file.path: bundle_spec(spec_file) for spec_file, _ in chosen}
    encoded = {path: bundle.encoded() for path, bundle in bundles.items()}
    for path, text in encoded.items():
        if len(text) > MAX_BUNDLE_CHARS:
            raise UsageError(
                f"{path}: the spec and its local files take {len(text):,} characters once packed, over the"
                f" {MAX_BUNDLE_CHARS:,} one job's environment value holds; move large data to the Hub"
                " (calibration.dataset as a Hub dataset id)"
            )
        try:
            decode_spec_bundle(text)
        except HubError as error:
            raise UsageError(f"{path}: {error.message}") from None
    plans = plan_jobs(chosen, SourceHub(endpoint, token))
    check_flavors(plans)
    for _, release in chosen:
        assert release.jobs is not None
        if not release.jobs.pinned:
            logger.warning(
                "%s: the job image %s is not pinned by digest; pin it as name@sha256:<digest>",
                release.variant,
                release.jobs.image,
            )
    api = _client(endpoint, token)
    hub = "hf" if hub_label == "hf" else endpoint
    running: list[_Running] = []
    try:
        for plan in plans:
            path = plan.spec_file.path
            running.append(_submit(api, plan, bundles[path].spec, encoded[path], hub, token))
            release = plan.release
            logger.info("%s: job %s submitted (%s)", release.variant, running[-1].job_id, running[-1].url)
        for item in running:
            item.thread = threading.Thread(
                target=_follow, args=(api, item, on_line, poll_seconds), name=f"job-{item.release.variant}", daemon=True
            )
            item.thread.start()
        for item in running:
            while item.thread is not None and item.thread.is_alive():
                item.thread.join(0.2)
    except BaseException:
        _cancel(api, running)
        raise
    outcomes = [_outcome(item, endpoint) for item in running]
    if not all(outcome.succeeded for outcome in outcomes):
        raise JobsFailedError(outcomes)
    return outcomes


# -- each variant on its flavor's machine ---------------------------------------------------------
BUILD_VLLM_ENV_OPTION = "--build-vllm-env"


@dataclass(frozen=True)
class JobPlan:
    """One variant's job before it is submitted: its flavor, the machine the plan checked (the flavor narrowed by
    the declared runner), the resource plan there, and whether the job builds the vLLM GPU environment first."""

    spec_file: SpecFile
    release: ReleaseSpec
    flavor: Flavor
    machine: Machine
    resources: ResourcePlan
    builds_vllm_environment: bool
    shape: ModelShape | str

    def as_dict(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor.name,
            "hardware": self.flavor.describe(),
            "machine": self.machine.describe(),
            "builds_vllm_environment": self.builds_vllm_environment,
        }


def require_jobs(chosen: list[tuple[SpecFile, ReleaseSpec]]) -> None:
    """Every chosen variant names a Jobs flavor; a UsageError names those that do not."""
    missing = [release.variant for _, release in chosen if release.jobs is None]
    if missing:
        raise UsageError(
            f"--on hf-jobs: variant {', '.join(missing)} has no `jobs:` section; set at least `jobs: {{flavor: …}}`"
            " (e.g. a10g-large) with the shared keys or in the variant"
        )


def builds_vllm_environment(release: ReleaseSpec, flavor: Flavor) -> bool:
    """A GPU flavor's job with vLLM checks on builds the vLLM GPU environment before it releases (a declared CPU
    run, `runner.gpus: 0`, does not: vLLM's GPU build would use the GPUs)."""
    cpu_run = release.runner is not None and release.runner.cpu_run
    return release.verify.vllm != "off" and flavor.has_gpu and not cpu_run


def plan_jobs(chosen: list[tuple[SpecFile, ReleaseSpec]], hub: SourceHub | None = None) -> list[JobPlan]:
    """Each variant's resource plan on its flavor's machine, narrowed by its declared runner; the bases' configs
    are read from `hub` (the Hub the jobs read their bases from; default: the environment's).

    A runner that claims more than its flavor has (GPUs, GPU memory, RAM, disk) is a SpecError at the
    runner's line. Nothing is checked against the flavor here: `check_flavors` refuses the plans that do not fit.
    """
    from hubpub.resources import release_resources, with_base_shapes

    require_jobs(chosen)
    sites = _Sites()
    machines: dict[int, tuple[Flavor, Machine]] = {}
    problems: dict[SpecProblem, list[str]] = {}
    for spec_file, release in chosen:
        assert release.jobs is not None
        flavor = flavor_of(release.jobs.flavor)
        machine, claims = flavor_machine(release, flavor)
        for key, message in claims:
            problems.setdefault(sites.problem(spec_file, release, ("runner", key), message), []).append(release.variant)
        machines[id(release)] = (flavor, machine)
    if problems:
        raise SpecError(
            sorted(
                (
                    replace(problem, message=f"{problem.message} (variant{'s' * (len(names) > 1)} {', '.join(names)})")
                    for problem, names in problems.items()
                ),
                key=lambda problem: (str(problem.file), problem.line, problem.column),
            )
        )
    plans = []
    # Each job is a run of its own: it downloads its base and measures the base's perplexity itself.
    for spec_file, release, shape, _ in with_base_shapes(((spec_file, release) for spec_file, release in chosen), hub):
        flavor, machine = machines[id(release)]
        resources = release_resources(release, machine, shape)
        plans.append(
            JobPlan(
                spec_file,
                release,
                flavor,
                machine,
                resources,
                builds_vllm_environment(release, flavor),
                shape,
            )
        )
    return plans


def flavor_machine(release: ReleaseSpec, flavor: Flavor) -> tuple[Machine, list[tuple[str, str]]]:
    """The flavor's machine narrowed by the variant's declared runner, and (runner key, message) for each size the
    runner claims beyond the flavor's."""
    runner = release.runner
    machine = flavor.machine(
        vllm_environment=builds_vllm_environment(release, flavor), cpu_offload=bool(runner and runner.cpu_offload)
    )
    if runner is None:
        return machine, []
    claims: list[tuple[str, str]] = []

    def beyond(key: str, claimed: str, has: str) -> None:
        claims.append(
            (
                key,
                f"{claimed} is more than the Jobs flavor {flavor.name} (jobs.flavor) has: {has}; declare at most that,"
                " or leave it out and the flavor's size is planned",
            )
        )

    gpus = machine.gpus
    if runner.gpus is not None:
        if runner.gpus > len(gpus):
            has = f"{flavor.gpus} × {flavor.gpu_model}" if flavor.has_gpu else "no GPU (a CPU flavor)"
            beyond("gpus", f"{runner.gpus} GPU(s)", has)
        gpus = gpus[: runner.gpus]
    if runner.gpu_memory_gb is not None and gpus:
        claimed = int(runner.gpu_memory_gb * GB)
        if claimed > gpus[0].memory_bytes:
            beyond("gpu_memory_gb", f"{runner.gpu_memory_gb:g} GB per GPU", f"{flavor.gpu_memory_gb:g} GB per GPU")
        gpus = tuple(replace(gpu, memory_bytes=min(claimed, gpu.memory_bytes)) for gpu in gpus)
    ram = machine.ram_bytes
    if runner.ram_gb is not None and ram is not None:
        if runner.ram_gb * GB > ram:
            beyond("ram_gb", f"{runner.ram_gb:g} GB of RAM", f"{flavor.ram_gb:g} GB")
        ram = min(ram, int(runner.ram_gb * GB))
    disk = machine.disk_bytes
    if runner.disk_gb is not None and disk is not None:
        if runner.disk_gb * GB > disk:
            left = f"{disk / GB:.0f} GB for the work folder ({flavor.disk_gb:g} GB, less the job's software)"
            beyond("disk_gb", f"{runner.disk_gb:g} GB of disk", left)
        disk = min(disk, int(runner.disk_gb * GB))
    return replace(machine, gpus=gpus, ram_bytes=ram, disk_bytes=disk), claims


def check_flavors(plans: list[JobPlan]) -> None:
    """Refuse, before anything is submitted, every variant whose flavor is too small for a stage: a
    FlavorTooSmallError at each one's `jobs.flavor` line, naming what does not fit and a flavor that would.
    A variant that requires the real vLLM load on a job without a vLLM environment is refused there too."""
    sites = _Sites()
    problems = []
    for plan in plans:
        if plan.release.verify.vllm == "required" and not plan.builds_vllm_environment:
            message = (
                f"{plan.flavor.name}: verify.vllm is required, but this job would have no vLLM environment (hubpub"
                " builds vLLM's GPU environment on GPU flavors only, and not for a declared CPU run); choose a GPU"
                " flavor, or verify.vllm: optional (the static vLLM checks only)"
            )
            problems.append(sites.problem(plan.spec_file, plan.release, ("jobs", "flavor"), message))
        elif plan.release.verify.vllm == "optional" and not plan.builds_vllm_environment:
            logger.info("%s: no vLLM environment in the job: the static vLLM checks only", plan.release.variant)
        if not plan.resources.estimable:
            logger.warning(
                "%s: resources not checked on the flavor %s: %s",
                plan.release.variant,
                plan.flavor.name,
                plan.resources.reason,
            )
            continue
        if not plan.resources.refusals:
            continue
        message = (
            f"{plan.flavor.name} ({plan.flavor.describe()}) is too small for variant {plan.release.variant}, nothing"
            f" was submitted: {'; '.join(plan.resources.refusals)}. {_fitting(plan)}"
        )
        problems.append(sites.problem(plan.spec_file, plan.release, ("jobs", "flavor"), message))
    if problems:
        raise FlavorTooSmallError(problems)


def _fitting(plan: JobPlan) -> str:
    """The cheapest flavor of the same kind (GPU or CPU) on which the variant's plan fits, in words."""
    from hubpub.resources import release_resources

    for candidate in by_price():
        if candidate.has_gpu != plan.flavor.has_gpu or candidate.name == plan.flavor.name:
            continue
        machine, claims = flavor_machine(plan.release, candidate)
        if claims:
            continue
        planned = release_resources(plan.release, machine, plan.shape)
        if not planned.refusals:
            return f"A flavor that fits: {candidate.name} ({candidate.describe()}, ${candidate.hourly_usd:.2f}/h)."
    kind = "GPU" if plan.flavor.has_gpu else "CPU"
    return f"No {kind} flavor fits it as planned; see `hubpub plan --on hf-jobs`."


class _Sites:
    """Where a variant's keys stand in its spec file: in its own entry of `variants`, else in the shared keys."""

    def __init__(self) -> None:
        self._files: dict[Path, Located] = {}

    def problem(self, spec_file: SpecFile, release: ReleaseSpec, keys: PathKey, message: str) -> SpecProblem:
        located = self._files.get(spec_file.path)
        if located is None:
            located = self._files[spec_file.path] = load_yaml(spec_file.path)
        path = keys
        if spec_file.is_family:
            index = next(number for number, item in enumerate(spec_file.releases) if item is release)
            variant = ("variants", index)
            if _written(located.data, (*variant, *keys)) or not _written(located.data, keys):
                path = (*variant, *keys)
        return located.problem(path, field_label(path), message)


def _written(data: Any, path: PathKey) -> bool:
    for key in path:
        listed = isinstance(key, int) and isinstance(data, list) and key < len(data)
        if not (listed or (isinstance(key, str) and isinstance(data, dict) and key in data)):
            return False
        data = data[key]
    return True


def _client(endpoint: str, token: str) -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token, library_name="hubpub")


def _submit(api: Any, plan: JobPlan, spec_in_bundle: str, bundle: str, hub: str, token: str) -> _Running:
    from huggingface_hub.errors import HfHubHTTPError

    release = plan.release
    jobs = release.jobs
    assert jobs is not None
    try:
        info = api.run_job(
            image=jobs.image,
            command=job_command(release, spec_in_bundle, hub, build_vllm=plan.builds_vllm_environment),
            env={BUNDLE_ENV: bundle},
            secrets={"HF_TOKEN": token},
            flavor=jobs.flavor,
            timeout=jobs.timeout_seconds,
            labels={"hubpub-variant": release.variant, "hubpub-repo": release.repo_id.replace("/", "--")},
            namespace=jobs.namespace or (None if hub == "hf" else release.repo_id.split("/")[0]),
        )
    except HfHubHTTPError as exc:
        raise JobError(f"{release.variant}: the job could not be submitted: {str(exc).replace(token, '***')}") from None
    return _Running(release, info.id, info.owner.name, info.url)


def _follow(api: Any, item: _Running, on_line: LineSink, poll_seconds: float) -> None:
    """Stream one job's log to the sink until it ends, then read its final stage."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        for line in _lines(api.fetch_job_logs(job_id=item.job_id, namespace=item.namespace, follow=True)):
            item.lines.append(line)
            on_line(item.release.variant, line)
    except HfHubHTTPError as exc:
        on_line(item.release.variant, f"(the log stream stopped: {exc}; waiting for the job to end)")
    item.final = api.wait_for_job(item.job_id, namespace=item.namespace, poll_interval=poll_seconds)


def _lines(chunks: Iterator[str]) -> Iterator[str]:
    for chunk in chunks:
        # rich pads the job's log lines to its terminal width
        yield from (line.rstrip() for line in chunk.splitlines() or [""])


def _cancel(api: Any, running: list[_Running]) -> None:
    for item in running:
        try:
            api.cancel_job(job_id=item.job_id, namespace=item.namespace)
            logger.warning("%s: job %s canceled (%s)", item.release.variant, item.job_id, item.url)
        except Exception as exc:  # the interrupt goes on; say which job may still run
            name = item.release.variant
            logger.error("%s: job %s could not be canceled: %s; cancel it at %s", name, item.job_id, exc, item.url)


def _outcome(item: _Running, endpoint: str) -> JobOutcome:
    final = item.final
    jobs = item.release.jobs
    assert jobs is not None
    stage = str(getattr(final.status.stage, "value", final.status.stage)) if final is not None else "UNKNOWN"
    return JobOutcome(
        variant=item.release.variant,
        repo_id=item.release.repo_id,
        repo_url=f"{endpoint.rstrip('/')}/{item.release.repo_id}",
        job_id=item.job_id,
        url=item.url,
        flavor=jobs.flavor,
        stage=stage,
        message=final.status.message if final is not None else "the job's final stage could not be read",
        last_lines=tuple(item.lines),
    )
