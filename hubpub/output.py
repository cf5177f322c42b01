"""How results reach the user: rich text locally, annotations under GitHub Actions.

Only the CLI calls this module. The library logs through `logging.getLogger("hubpub")`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape

from hubpub import stagelog
from hubpub.ci import append_summary, end_group, escape_data, escape_property, start_group, under_github_actions
from hubpub.errors import SpecProblem
from hubpub.manifest import StageResult
from hubpub.quality import recovery_text

if TYPE_CHECKING:
    from hubpub.pipeline import StageEvent

LOGGER_NAME = "hubpub"


class ConsoleStream:
    """stdout or stderr as hubpub's console sees it: looked up at each write (a replaced stream is never written
    after it closes), and the real one while a stage log captures what other libraries print."""

    def __init__(self, stderr: bool) -> None:
        self.stderr = stderr

    @property
    def stream(self) -> TextIO:
        return stagelog.console_stream(self.stderr)

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


_error_console: Console | None = None


def console(stream: TextIO | None = None) -> Console:
    return Console(file=stream or ConsoleStream(stderr=False), highlight=False, soft_wrap=True)  # type: ignore[arg-type]


def error_console() -> Console:
    """The one stderr console: log records and the live view share it, so records print above the view."""
    global _error_console
    if _error_console is None:
        _error_console = Console(file=ConsoleStream(stderr=True), highlight=False, soft_wrap=True)  # type: ignore[arg-type]
    return _error_console


def interactive() -> bool:
    """A person watches stderr: live views and rich tables, not plain lines."""
    return not under_github_actions() and ConsoleStream(stderr=True).isatty()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the console's stderr."""

    @property
    def stream(self) -> TextIO:
        return stagelog.console_stream(stderr=True)

    @stream.setter
    def stream(self, _: TextIO) -> None:
        return


class _PlainFormatter(logging.Formatter):
    """One line per record, the level named only when it is not INFO."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def configure_logging(verbosity: int) -> None:
    """-q → warnings only, default → info, -v → debug (hubpub), -vv → debug (everything)."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler: logging.Handler
    if under_github_actions():
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    elif not interactive():
        handler = _StderrHandler()
        handler.setFormatter(_PlainFormatter("%(message)s"))
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


_SYMBOLS = {"started": "…", "done": "✓", "cached": "✓", "skipped": "–", "failed": "✗"}
_COLOURS = {"started": "cyan", "done": "green", "cached": "green", "skipped": "dim", "failed": "red"}


def key_figure(stage: str, result: StageResult) -> str:
    """The one number or verdict of a finished stage that the live view and the summary show."""
    metrics = result.metrics
    if result.status == "failed":
        return ""
    if stage == "quantize" and "checkpoint_bytes" in metrics:
        return f"{metrics['checkpoint_bytes'] / 1e6:,.1f} MB"
    if stage == "verify" and "perplexity" in metrics:
        return f"ppl ×{metrics['perplexity']['ratio']:.3f}"
    if stage == "vllm":
        smoke = metrics.get("smoke")
        if smoke is not None:
            return "vLLM loaded" if smoke.get("ok") else "vLLM failed"
        preflight = metrics.get("preflight") or {}
        return "vLLM not run" if preflight.get("loads_somewhere", True) else "vLLM refuses"
    if stage == "evaluate" and metrics.get("rows"):
        return headline(metrics)
    if stage == "publish" and metrics.get("commit"):
        return f"{metrics['status']} {metrics['commit'][:8]}"
    if stage == "publish" and result.status == "skipped":
        return "not pushed"
    return ""


def headline(metrics: dict[str, Any]) -> str:
    """The evaluation's headline: the primary task and metric (the spec's `evaluation.primary`, else its first
    task; lm-eval's first metric of it) with its recovery and 95% interval, or its ratio for a perplexity."""
    rows = metrics["rows"]
    primary = metrics.get("primary") or {"task": rows[0]["task"], "metric": rows[0]["metric"]}
    row = next((row for row in rows if (row["task"], row["metric"]) == (primary["task"], primary["metric"])), rows[0])
    what = "recovery" if row["higher_is_better"] else "ratio"
    return f"{row['task']} {row['metric']} {what} {recovery_text(row)}"


class _Cell:
    def __init__(self) -> None:
        self.state = "waiting"
        self.started = time.perf_counter()
        self.seconds: float | None = None
        self.figure = ""
        self.progress: tuple[str, int, int] | None = None


class ReleaseView:
    """Shows a release as it runs, from the pipeline's StageEvents.

    On a terminal: one live table, variants as rows and stages as columns, each cell with its state, time and
    the stage's key figure (or a running stage's progress). Elsewhere: one plain line per finished stage; under
    GitHub Actions each stage is also a `::group::`. A failed stage shows the last lines of its log and the log's
    path; the CLI then prints hubpub's message.
    """

    def __init__(self, stages: Sequence[str], *, enabled: bool = True) -> None:
        self.stages = list(stages)
        self.enabled = enabled
        self.grouped = enabled and under_github_actions()
        self.live = enabled and interactive()
        self._cells: dict[str, dict[str, _Cell]] = {}
        self._lock = threading.Lock()
        self._live: Any = None

    def __enter__(self) -> ReleaseView:
        if self.live:
            from rich.live import Live

            self._live = Live(
                console=error_console(),
                get_renderable=self._table,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(*exc_info)
            self._live = None

    def __call__(self, event: StageEvent) -> None:
        if not self.enabled:
            return
        with self._lock:
            row = self._cells.setdefault(event.variant, {})
            if event.event == "started":
                row[event.stage] = _Cell()
            cell = row.setdefault(event.stage, _Cell())
            if event.event == "progress":
                cell.progress = event.progress
                return
            cell.state = event.event
            if event.event != "started":
                cell.seconds = time.perf_counter() - cell.started
                cell.figure = key_figure(event.stage, event.result) if event.result is not None else ""
        if event.event == "started":
            if self.grouped:
                start_group(f"{event.variant}: {event.stage}")
            return
        if not self.live:
            took = f" ({cell.seconds:.1f} s)" if event.event == "done" and cell.seconds is not None else ""
            figure = f": {cell.figure}" if cell.figure else ""
            print(
                f"{event.variant}: {event.stage} {event.event}{took}{figure}",
                file=stagelog.console_stream(),
                flush=True,
            )
        if event.event == "failed":
            self._show_failure(event)
        if self.grouped:
            end_group()

    def _show_failure(self, event: StageEvent) -> None:
        lines = stagelog.tail(event.log)
        out = error_console()
        if lines:
            out.print(f"[red]{escape(event.variant)}: {escape(event.stage)} failed[/red]; the last lines of its log:")
            for line in lines:
                out.print(f"  │ {escape(line)}")
        out.print(f"  log: {escape(str(event.log))}")
        if self.grouped:
            append_summary(
                f"**{event.variant}: {event.stage} failed.** Its log: `{event.log}`; the other stages' logs are"
                f" beside it (the release workflow uploads the folder)."
            )

    def _table(self) -> Any:
        from rich.table import Table

        table = Table("variant", *self.stages, box=None, pad_edge=False, padding=(0, 1))
        now = time.perf_counter()
        with self._lock:
            for variant, row in self._cells.items():
                cells = []
                for stage in self.stages:
                    cell = row.get(stage)
                    if cell is None:
                        cells.append("[dim]·[/dim]")
                        continue
                    colour = _COLOURS.get(cell.state, "")
                    seconds = cell.seconds if cell.seconds is not None else now - cell.started
                    text = f"[{colour}]{_SYMBOLS.get(cell.state, '?')}[/{colour}] {seconds:.0f}s"
                    if cell.state == "started" and cell.progress is not None:
                        what, done, total = cell.progress
                        text += f"\n{done}/{total} {escape(what[:18])}"
                    elif cell.figure:
                        text += f"\n{escape(cell.figure)}"
                    cells.append(text)
                table.add_row(escape(variant), *cells)
        return table
