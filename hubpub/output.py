"""How results reach the user: rich text locally, annotations under GitHub Actions.

Only the CLI calls this module. The library logs through `logging.getLogger("hubpub")`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from hubpub.ci import end_group, escape_data, escape_property, start_group, under_github_actions
from hubpub.errors import SpecProblem

LOGGER_NAME = "hubpub"


def console(stream: TextIO | None = None) -> Console:
    return Console(file=stream, highlight=False, soft_wrap=True)


def error_console() -> Console:
    # stderr=True looks sys.stderr up at each write, so a replaced stream is never written after it closes.
    return Console(stderr=True, highlight=False, soft_wrap=True)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current sys.stderr."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        return


def configure_logging(verbosity: int) -> None:
    """-q → warnings only, default → info, -v → debug (hubpub), -vv → debug (everything)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler: logging.Handler
    if under_github_actions():
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=error_console(), show_path=False, show_time=False)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(level)


def report_spec_problems(problems: list[SpecProblem]) -> None:
    """One line per problem on stderr; under Actions also an `::error` annotation at the line."""
    err = error_console()
    for problem in problems:
        err.print(f"[red]error[/red]: {problem}", markup=True, emoji=False)
    if under_github_actions():
        for problem in problems:
            message = f"{problem.field}: {problem.message}" if problem.field else problem.message
            print(
                f"::error file={escape_property(str(problem.file))},line={problem.line},col={problem.column},"
                f"title=hubpub spec::{escape_data(message)}"
            )


class StageProgress:
    """Shows which stage of which variant is running: a rich spinner locally, plain lines in CI.

    Under GitHub Actions each stage's log is folded into a group named after the variant and stage.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.grouped = enabled and under_github_actions()
        self.interactive = enabled and not under_github_actions() and sys.stderr.isatty()
        self._status: Any = None
        self._started: dict[tuple[str, str], float] = {}

    def __enter__(self) -> StageProgress:
        if self.interactive:
            self._status = error_console().status("starting")
            self._status.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc_info)

    def update(self, variant: str, stage: str, event: str) -> None:
        if not self.enabled:
            return
        key = (variant, stage)
        if event == "started":
            self._started[key] = time.perf_counter()
            if self.grouped:
                start_group(f"{variant}: {stage}")
            if self._status is not None:
                self._status.update(f"{variant}: {stage}…")
            return
        elapsed = time.perf_counter() - self._started.pop(key, time.perf_counter())
        line = f"{variant}: {stage} {event}" + (f" ({elapsed:.1f} s)" if event == "done" else "")
        if self.grouped:
            print(line, file=sys.stderr, flush=True)
            end_group()
            return
        if under_github_actions() or not self.interactive:
            print(line, file=sys.stderr, flush=True)
        else:
            error_console().print(escape(line))
