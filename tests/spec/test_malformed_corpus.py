"""Every file in malformed/ holds one mistake: `hubpub validate` must exit 2 and name file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hubpub.cli import main

CORPUS = sorted((Path(__file__).parent / "malformed").glob("*.yaml"))


def expected_location(spec: Path) -> tuple[int, str | None]:
    text = spec.read_text(encoding="utf-8")
    field = re.search(r"^# expect-field: (\S+)$", text, re.MULTILINE)
    assert field, f"{spec.name} needs an '# expect-field:' header"
    explicit_line = re.search(r"^# expect-line: (\d+)$", text, re.MULTILINE)
    if explicit_line:
        line = int(explicit_line.group(1))
    else:
        marked = [number for number, content in enumerate(text.splitlines(), start=1) if content.endswith("# <-")]
        assert len(marked) == 1, f"{spec.name} must mark exactly one line with '# <-'"
        line = marked[0]
    return line, None if field.group(1) == "-" else field.group(1)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("spec", CORPUS, ids=[path.stem for path in CORPUS])
def test_malformed_spec_is_reported_at_its_line(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, field = expected_location(spec)
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(spec)])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    reported = [entry for entry in stderr.splitlines() if entry.startswith(f"error: {spec}:{line}:")]
    assert reported, f"no error at {spec.name}:{line} in:\n{stderr}"
    if field is not None:
        assert any(f": {field}: " in entry for entry in reported), f"field {field} not named in:\n{stderr}"


def test_all_errors_of_several_files_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    chosen = [CORPUS[0], CORPUS[1]]
    with pytest.raises(SystemExit) as exited:
        main(["validate", *map(str, chosen)])
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    for spec in chosen:
        assert f"error: {spec}:" in stderr
