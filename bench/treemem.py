"""Wall time and memory of a whole command, as a user runs it: the process and everything it starts.

Memory is the proportional set size (PSS) of the process tree, sampled every 50 ms: pages that
processes share (a fork server's imports, which its children share) count once, split between the
sharers, and memory held by several processes at once adds up. The same measure is used for hubpub
and for the plain scripts it is compared with.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def tree_memory_bytes(root: int) -> int:
    """The PSS of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry.name))
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _pss_bytes(pid)
        pending.extend(children.get(pid, []))
    return total


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """Run `command` to its end; `seconds` and `peak_mb` (the tree's peak PSS in MiB). Exits on failure.

    `on_line(line, tree_mb)` sees each line the command prints, with the tree's memory at that moment.
    """
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env or dict(os.environ), cwd=cwd
    )
    log: list[str] = []
    peak = [0]

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if on_line is not None:
                now = tree_memory_bytes(process.pid)
                peak[0] = max(peak[0], now)
                on_line(line, now / 2**20)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while process.poll() is None:
        peak[0] = max(peak[0], tree_memory_bytes(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    reader.join()
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{''.join(log[-40:])}")
    return {"seconds": seconds, "peak_mb": peak[0] / 2**20}
