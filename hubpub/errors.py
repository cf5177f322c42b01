"""One error hierarchy for hubpub. Each class carries the exit code the CLI uses for it.

The message shown to the user is built here, in the exception, so every caller says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class HubpubError(Exception):
    """Base of every error hubpub raises on purpose. Anything else is a bug (exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class SpecProblem:
    """One mistake in a spec file, located at the user's line."""

    file: Path
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class SpecError(HubpubError):
    """The release spec is invalid: bad YAML, an unknown key, a wrong value, a missing file."""

    exit_code = 2

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))


class UsageError(HubpubError):
    """The command was asked for something it cannot do with the given arguments."""

    exit_code = 2


class PreflightError(HubpubError):
    """The spec asks for something the base model's shapes cannot take: a choice in the spec to fix."""

    exit_code = 2


class ResourceError(HubpubError):
    """The machine cannot run the release as planned; found before anything is downloaded."""

    exit_code = 2


class RunnerTooSmallError(ResourceError):
    """A stage needs more host RAM, GPU memory or disk than the runner has (the resource plan's refusal)."""

    def __init__(self, variant: str, machine: str, refusals: list[str]) -> None:
        self.refusals = refusals
        super().__init__(
            f"{variant}: the runner ({machine}) is too small; nothing was downloaded:\n- "
            + "\n- ".join(refusals)
            + "\nSee `hubpub plan` for every stage's needs; declare the runner in the spec's `runner:` section."
        )


class FlavorTooSmallError(SpecError):
    """A variant's Hugging Face Jobs flavor is too small for a stage of its resource plan, or cannot run the vLLM
    load the spec requires: reported at the flavor's line of the spec, before any job is submitted."""


class CudaUnavailableError(ResourceError):
    """A GPU release (the spec declares GPUs, or the machine has an NVIDIA GPU) cannot use CUDA: it never falls
    back to the CPU. A CPU run is declared with `runner: {gpus: 0}`."""

    @classmethod
    def at_start(cls, variant: str, gpu: str, found: str) -> CudaUnavailableError:
        """Found by the check before anything is downloaded; `gpu` says why this is a GPU release."""
        return cls(
            f"{variant}: {gpu}, but CUDA is not usable here: {found}. Nothing was downloaded or quantized:"
            " a GPU release does not fall back to the CPU. Install a CUDA build of torch that this machine's"
            " driver supports, or declare a CPU run with `runner: {gpus: 0}`."
        )

    @classmethod
    def in_child(cls, what: str, found: str) -> CudaUnavailableError:
        """Found by a stage's child that the plan placed on GPUs."""
        return cls(
            f"{what}: the resource plan placed the model on GPUs, but CUDA is not usable in this process: {found}."
            " A GPU release does not fall back to the CPU; declare a CPU run with `runner: {gpus: 0}`."
        )


class PlacementError(ResourceError):
    """A model does not fit the devices its placement gives it, sized as it is held once loaded (a compressed
    checkpoint decompressed); the message names both sizes."""


class StageError(HubpubError):
    """A pipeline stage could not complete (a broken checkpoint, a failed load)."""

    exit_code = 3


class GateError(HubpubError):
    """A quality gate failed (perplexity ratio, accuracy recovery): nothing is published."""

    exit_code = 4


class PublishError(HubpubError):
    """Publishing to the Hub failed; the remote was left as it was."""

    exit_code = 5


class UnfinishedPublishError(PublishError):
    """Publishing stopped half-way: the remote holds a commit of the release that is not tagged.

    A partial commit that could not be completed, a complete one whose round trip failed, or a remote
    that could not be read back. The message says what the remote holds and how to repair it.
    """

    exit_code = 6


class JobError(HubpubError):
    """A Hugging Face job of the release could not be submitted, or did not complete."""

    exit_code = 7


EXIT_CODES: dict[str, int] = {
    "success": 0,
    "unexpected internal error (a bug: please report it)": HubpubError.exit_code,
    "invalid spec or command-line usage": SpecError.exit_code,
    "the runner is too small for a stage, or its GPUs' CUDA is unusable (nothing downloaded)": (
        ResourceError.exit_code
    ),
    "a stage failed": StageError.exit_code,
    "a quality gate failed": GateError.exit_code,
    "publishing failed (the remote is left as it was)": PublishError.exit_code,
    "publishing stopped half-way (the remote holds an untagged commit: the message says what and how to repair it)": (
        UnfinishedPublishError.exit_code
    ),
    "a Hugging Face job failed or could not be submitted (release --on hf-jobs; its last log lines are shown)": (
        JobError.exit_code
    ),
    "interrupted (Ctrl-C; with --on hf-jobs the jobs started are canceled)": 130,
}
