"""How results reach the user: rich text locally, annotations under GitHub Actions.

Only the CLI calls this module. The library logs through `logging.getLogger("hubpub")`.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from rich.console import Console

from hubpub.errors import SpecProblem

LOGGER_NAME = "hubpub"


def under_github_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def console(stream: TextIO | None = None) -> Console:
    return Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)


def error_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def configure_logging(verbosity: int) -> None:
    """-q → warnings only, default → info, -v → debug (hubpub), -vv → debug (everything)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler: logging.Handler
    if under_github_actions():
        handler = logging.StreamHandler(sys.stderr)
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
                f"::error file={_escape_property(str(problem.file))},line={problem.line},col={problem.column},"
                f"title=hubpub spec::{_escape_data(message)}"
            )


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
