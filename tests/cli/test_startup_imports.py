"""The cheap commands must never import the heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_SPEC, PRODUCTION_SPEC

HEAVY = ("torch", "transformers", "llmcompressor", "lm_eval", "compressed_tensors", "datasets", "vllm")

PROBE = """
import json, sys
from hubpub.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = [name for name in sys.modules if name.split('.')[0] in {heavy!r}]
sys.stderr.write("HEAVY=" + json.dumps(sorted(heavy)) + "\\n")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", str(PRODUCTION_SPEC), str(DEMO_SPEC)],
        ["plan", "--json", str(PRODUCTION_SPEC), str(DEMO_SPEC)],
        ["schema"],
    ],
    ids=["help", "validate", "plan", "schema"],
)
def test_cheap_commands_import_no_heavy_library(args: list[str], demo_model: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=set(HEAVY)), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("HEAVY=")]
    assert marker, result.stderr
    assert json.loads(marker[0].removeprefix("HEAVY=")) == []
    assert result.stdout
