"""Write one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

from __future__ import annotations

import platform
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by the script it names, as a ratio against a baseline run the same way on the"
    " same machine. Rerun with `make bench`.\n"
)


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_section(name: str, body: str) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    section = f"{start}\n{body.rstrip()}\n\n_Measured {stamp} on {machine()}._\n{end}"
    text = BENCHMARKS.read_text(encoding="utf-8") if BENCHMARKS.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else f"{text.rstrip()}\n\n{section}\n"
    BENCHMARKS.write_text(text, encoding="utf-8")


def measure_or_replay(
    report_from: Path | None, save_to: Path | None, measure: Callable[[], Any], render: Callable[[Any], str], name: str
) -> None:
    """Measure (saving the raw figures to `save_to` when given), or re-read figures saved earlier; then write
    and print the section `name`."""
    import json

    if report_from is not None:
        figures = json.loads(report_from.read_text(encoding="utf-8"))
    else:
        figures = measure()
        if save_to is not None:
            save_to.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    text = render(figures)
    write_section(name, text)
    print(text)
