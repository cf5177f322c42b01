"""Tokens for a shared Hub: `hub serve --tokens FILE`, a token per person or CI box with namespaces and a role."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hubpub.hub import HubConfigError, load_tokens_file
from tests.conftest import run_cli

CI = "hf_ci_token_000000000000000"
READER = "hf_reader_token_00000000000"
ADMIN = "hf_admin_token_000000000000"

TOKENS_YAML = f"""\
tokens:
  - name: ci
    sha256: {hashlib.sha256(CI.encode()).hexdigest()}
    namespaces: [team]
  - name: auditor
    token: {READER}
    namespaces: [team]
    role: read
  - name: admin
    token: {ADMIN}
    namespaces: "*"
"""


def test_a_tokens_file_gives_each_token_its_namespaces_and_role(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(TOKENS_YAML)
    table = load_tokens_file(path)
    ci, reader, admin = (table.lookup(token) for token in (CI, READER, ADMIN))
    assert ci is not None and ci.can_write("team") and ci.can_write("ci") and not ci.can_write("other")
    assert reader is not None and reader.owns("team") and not reader.can_write("team")
    assert admin is not None and admin.can_write("anyone")
    assert table.lookup("hf_not_listed_000000000") is None
    assert CI not in repr(table.by_digest) and READER not in repr(table.by_digest)


def test_json_is_a_tokens_file_too(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"tokens": [{"name": "ci", "token": CI, "namespaces": ["team"]}]}))
    identity = load_tokens_file(path).lookup(CI)
    assert identity is not None and identity.can_write("team")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("tokens: [\n", ":2:1:", "not valid YAML"),
        ("", "", "empty tokens file"),
        ("- name: x\n", ":1:1: top level", "mapping"),
        ("tokens: []\n", ":1:9: tokens", "non-empty list"),
        ("users: []\n", ":1:1: users", "unknown key"),
        (f"tokens:\n  - name: ci\n    token: {CI}\n    role: admin\n", ":4:11: tokens[0].role", "read or write"),
        (f"tokens:\n  - name: ci\n    token: {CI}\n    colour: red\n", ":4:5: tokens[0].colour", "unknown key"),
        ("tokens:\n  - name: ci\n    token: short\n", ":3:12: tokens[0].token", "at least 16"),
        ("tokens:\n  - name: ci\n    sha256: abc\n", ":3:13: tokens[0].sha256", "64 hex"),
        (f"tokens:\n  - name: ci\n    token: {CI}\n    sha256: {'0' * 64}\n", ":2:5: tokens[0]", "exactly one"),
        (f"tokens:\n  - token: {CI}\n", ":2:5: tokens[0].name", "required"),
        (f"tokens:\n  - name: ../x\n    token: {CI}\n", ":2:11: tokens[0].name", "ASCII letters"),
        (f"tokens:\n  - name: ci\n    token: {CI}\n    namespaces: team\n", ":4:17: tokens[0].namespaces", "list"),
        (f"tokens:\n  - {{name: a, token: {CI}}}\n  - {{name: b, token: {CI}}}\n", ":3:5: tokens[1]", "twice"),
    ],
)
def test_a_bad_tokens_file_is_a_clear_error_at_its_line(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    with pytest.raises(HubConfigError) as raised:
        load_tokens_file(path)
    assert str(raised.value).startswith(f"{path}{where}"), str(raised.value)
    assert message in str(raised.value)
    assert CI not in str(raised.value)


def test_hub_serve_exits_2_on_a_bad_tokens_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n  - name: ci\n    token: short\n")
    code, _, err = run_cli(["hub", "serve", "--dir", str(tmp_path / "store"), "--tokens", str(path)], capsys)
    assert code == 2 and f"{path}:3:12" in err
    code, _, err = run_cli(["hub", "serve", "--tokens", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "missing.yaml" in err
    path.write_text(TOKENS_YAML)
    code, _, err = run_cli(["hub", "serve", "--tokens", str(path), "--token", CI], capsys)
    assert code == 2 and "exclude each other" in err


def test_hub_new_token_makes_an_entry_the_file_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["hub", "new-token", "ci", "--namespace", "team", "--read-only"], capsys)
    assert code == 0
    token = out.split("): ", 1)[1].split()[0]
    entry = out.split("tokens:` in the tokens file:\n", 1)[1]
    assert token not in entry
    path = tmp_path / "tokens.yaml"
    path.write_text("tokens:\n" + entry)
    identity = load_tokens_file(path).lookup(token)
    assert identity is not None and identity.read_only and identity.owns("team")
    assert run_cli(["hub", "new-token", "../x"], capsys)[0] == 2


@pytest.fixture
def team_hub(tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "tokens.yaml"
    path.write_text(TOKENS_YAML)
    command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(tmp_path / "store"), "--port", "0"]
    environment = {key: value for key, value in os.environ.items() if key != "HUBPUB_HUB_TOKEN"}
    server = subprocess.Popen(
        [*command, "--tokens", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )
    try:
        assert server.stdout is not None
        first_line = server.stdout.readline()
        yield first_line.rsplit(" at ", 1)[1].strip()
    finally:
        server.terminate()
        output, errors = server.communicate(timeout=10)
    assert not any(token in first_line + output + errors for token in (CI, READER, ADMIN))


def test_a_team_shares_one_hub_each_with_its_own_rights(team_hub: str) -> None:
    ci, reader, admin = (HfApi(endpoint=team_hub, token=token) for token in (CI, READER, ADMIN))
    ci.create_repo("team/model", private=True)
    ci.upload_file(path_or_fileobj=b"weights", path_in_repo="w.txt", repo_id="team/model")
    with pytest.raises(HfHubHTTPError, match="403"):
        ci.create_repo("other/model")
    assert reader.list_repo_files("team/model") == [".gitattributes", "w.txt"]
    assert reader.whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HfHubHTTPError, match="read-only"):
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="team/model")
    with pytest.raises(HfHubHTTPError, match="403"):
        reader.create_repo("team/another")
    admin.create_repo("other/model")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=team_hub, token=False).model_info("team/model")
