"""Each stage's log file: what other libraries print while a stage runs, and its children's output.

The pipeline opens a `StageLog` around every stage. hubpub's own log records go to the log file and
keep reaching the console; with `capture`, everything else the hubpub process prints during the stage
(`print`, tqdm bars, `warnings`, records of other libraries' loggers) goes to the file alone. Children
(`hubpub.stages._child`, the card's snippets, the vLLM child) keep their own log files, and a copy of
their output is added here with `include`, so one file per stage tells what happened.

Progress bars seen in the captured output or in a running child's log become `(what, done, total)`
reports, which the pipeline forwards to whoever shows the release.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TextIO

FOLDER = "logs"
TAIL_LINES = 15
_MARK = "==> "
_HUBPUB = "hubpub"
# tqdm's bar: "Running loglikelihood requests:  45%|████▌     | 450/1000 [00:10<00:12, 40.1it/s]"
_BAR = re.compile(r"(?:^|[\r\n])([^\r\n|]*?):?\s*\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
_WATCHED_BYTES = 4096

ProgressSink = Callable[[str, int, int], None]
"""Called with (what, done, total), e.g. ("Running loglikelihood requests", 450, 1000)."""


def log_path(root: Path, stage: str) -> Path:
    """The log of `stage` in the release folder `root`."""
    return root / FOLDER / f"{stage}.log"


def last_bar(text: str) -> tuple[str, int, int] | None:
    """The last progress bar printed in `text`, as (what, done, total)."""
    bars = list(_BAR.finditer(text))
    if not bars:
        return None
    last = bars[-1]
    return last.group(1).strip(), int(last.group(2)), int(last.group(3))


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` non-empty lines of the last run in a stage log (progress bars as their last state)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    last_run = text.rfind(f"{_MARK}{path.stem} started ")
    kept = [line.rsplit("\r", 1)[-1].rstrip() for line in text[max(last_run, 0) :].splitlines()]
    return [line for line in kept if line.strip() and not line.startswith(_MARK)][-lines:]


class _Capture:
    """A text stream that writes to the stage log and reports the progress bars written to it."""

    def __init__(self, log: StageLog) -> None:
        self._log = log

    def write(self, text: str) -> int:
        self._log.write(text)
        bar = last_bar(text)
        if bar is not None:
            self._log.report(*bar)
        return len(text)

    def flush(self) -> None:
        self._log.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _from_hubpub(record: logging.LogRecord) -> bool:
    return record.name == _HUBPUB or record.name.startswith(f"{_HUBPUB}.")


class StageLog:
    """Appends one run of a stage to its log file; see the module's docstring."""

    def __init__(self, path: Path, *, capture: bool = False, progress: ProgressSink | None = None) -> None:
        self.path = path
        self.capture = capture
        self._progress = progress
        self._file: IO[str] | None = None
        self._handler: logging.Handler | None = None
        self._filtered: list[logging.Handler] = []
        self._streams: tuple[TextIO, TextIO] | None = None
        self._reported = 0.0
        self._outer: StageLog | None = None

    def __enter__(self) -> StageLog:
        global _active
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._file.write(f"{_MARK}{self.path.stem} started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._handler = logging.StreamHandler(self._file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        if self.capture:
            self._filtered = list(root.handlers)
            for handler in self._filtered:
                handler.addFilter(_from_hubpub)
            self._streams = (sys.stdout, sys.stderr)
            sys.stdout = sys.stderr = _Capture(self)
        root.addHandler(self._handler)
        self._outer, _active = _active, self
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _active
        _active = self._outer
        root = logging.getLogger()
        if self._handler is not None:
            root.removeHandler(self._handler)
        for handler in self._filtered:
            handler.removeFilter(_from_hubpub)
        if self._streams is not None:
            sys.stdout, sys.stderr = self._streams
        if self._file is not None:
            error = exc_info[1]
            ending = "ended" if error is None else f"failed: {(str(error) or type(error).__name__).splitlines()[0]}"
            self._file.write(f"{_MARK}{self.path.stem} {ending}\n")
            self._file.close()
            self._file = None

    def write(self, text: str) -> None:
        if self._file is not None:
            self._file.write(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def report(self, what: str, done: int, total: int) -> None:
        # Bars redraw many times a second; a display needs a few updates a second at most.
        now = time.monotonic()
        if self._progress is None or (now - self._reported < 0.25 and done < total):
            return
        self._reported = now
        self._progress(what, done, total)

    def console(self, stderr: bool) -> TextIO:
        """The stream that was there before this log captured it."""
        assert self._streams is not None
        return self._streams[1] if stderr else self._streams[0]


_active: StageLog | None = None


def active() -> StageLog | None:
    """The log of the stage running now, if any."""
    return _active


def include(title: str, text: str) -> None:
    """Add a child process's output to the running stage's log (nothing happens outside a stage)."""
    if _active is None:
        return
    _active.write(f"{_MARK}output of {title}:\n{text.rstrip()}\n{_MARK}end of {title}\n")


def watch(path: Path) -> Callable[[], None]:
    """A poll function that reports the last progress bar in a running child's log file."""

    def poll() -> None:
        if _active is None or not path.is_file():
            return
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(size - _WATCHED_BYTES, 0))
            bar = last_bar(handle.read().decode("utf-8", errors="replace"))
        if bar is not None:
            _active.report(*bar)

    return poll


def console_stream(stderr: bool = True) -> TextIO:
    """Where hubpub's own console output goes: the real stream even while a stage log captures it."""
    capturing = _active
    while capturing is not None and capturing._streams is None:
        capturing = capturing._outer
    if capturing is not None:
        return capturing.console(stderr)
    return sys.stderr if stderr else sys.stdout
