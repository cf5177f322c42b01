from __future__ import annotations

from pathlib import Path

import pytest

from hubpub import api
from tests.conftest import run_cli, write_spec


def test_card_command_renders_the_staged_card_again(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    (outcome,) = api.release([spec], workdir=tmp_path / "w", push=False)
    assert outcome.stages["card"].metrics["snippet"]["ran"] is True
    output = tmp_path / "card.md"
    code, _, err = run_cli(["card", str(spec), "--workdir", str(tmp_path / "w"), "-o", str(output)], capsys)
    assert code == 0, err
    assert output.read_text(encoding="utf-8") == (outcome.staged_dir / "README.md").read_text(encoding="utf-8")


def test_card_of_an_unstaged_release_is_a_clear_error(
    tiny_llama: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, tiny_llama)
    code, _, err = run_cli(["card", str(spec), "--workdir", str(tmp_path / "none")], capsys)
    assert code == 3
    assert "has no staged release" in err and "Traceback" not in err
