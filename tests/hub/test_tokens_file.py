"""Tokens for a shared Hub: `hub serve --tokens FILE`, a token per person or CI box with namespaces and a role."""

from __future__ import annotations

import contextlib
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


def write_private(path: Path, text: str) -> Path:
    """A tokens file as its owner should keep it: readable and writable by the owner only."""
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_tokens_file_gives_each_token_its_namespaces_and_role(tmp_path: Path) -> None:
    path = write_private(tmp_path / "tokens.yaml", TOKENS_YAML)
    table = load_tokens_file(path)
    ci, reader, admin = (table.lookup(token) for token in (CI, READER, ADMIN))
    assert ci is not None and ci.can_write("team") and ci.can_write("ci") and not ci.can_write("other")
    assert reader is not None and reader.owns("team") and not reader.can_write("team")
    assert admin is not None and admin.can_write("anyone")
    assert table.lookup("hf_not_listed_000000000") is None
    assert CI not in repr(table.by_digest) and READER not in repr(table.by_digest)


def test_json_is_a_tokens_file_too(tmp_path: Path) -> None:
    path = write_private(
        tmp_path / "tokens.json", json.dumps({"tokens": [{"name": "ci", "token": CI, "namespaces": ["team"]}]})
    )
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


@contextlib.contextmanager
def serving(tokens_file: Path) -> Iterator[tuple[str, list[str]]]:
    """`hub serve --tokens FILE` in a subprocess: its URL, and (once stopped) everything it wrote."""
    command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(tokens_file.parent / "store")]
    environment = {key: value for key, value in os.environ.items() if key != "HUBPUB_HUB_TOKEN"}
    server = subprocess.Popen(
        [*command, "--port", "0", "--tokens", str(tokens_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    written: list[str] = []
    try:
        assert server.stdout is not None
        written.append(server.stdout.readline())
        yield written[0].rsplit(" at ", 1)[1].strip(), written
    finally:
        server.terminate()
        written.extend(server.communicate(timeout=10))


@pytest.fixture
def team_hub(tmp_path: Path) -> Iterator[str]:
    with serving(write_private(tmp_path / "tokens.yaml", TOKENS_YAML)) as (url, written):
        yield url
    assert not any(token in "".join(written) for token in (CI, READER, ADMIN))


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


ADMIN_BY_DIGEST = (
    f"tokens:\n  - name: admin\n    sha256: {hashlib.sha256(ADMIN.encode()).hexdigest()}\n    namespaces: '*'\n"
)


@pytest.mark.parametrize("given", ["a", "hf_15_characters", "hf_has a space_0123456"])
def test_hub_serve_refuses_a_short_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    given = given.replace("hf_15_characters", "x" * 15)
    code, out, err = run_cli(["hub", "serve", "--dir", str(tmp_path / "store"), "--token", given], capsys)
    assert code == 2 and "at least 16 characters" in err and not out
    monkeypatch.setenv("HUBPUB_HUB_TOKEN", given)
    code, _, err = run_cli(["hub", "serve", "--dir", str(tmp_path / "store")], capsys)
    assert code == 2 and "HUBPUB_HUB_TOKEN" in err
    assert not (tmp_path / "store").exists(), "refused before anything was made"


@pytest.mark.parametrize("mode", [0o666, 0o602, 0o620, 0o646])
def test_a_tokens_file_other_users_can_write_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(ADMIN_BY_DIGEST)
    path.chmod(mode)
    with pytest.raises(HubConfigError, match="other users can write this tokens file"):
        load_tokens_file(path)
    code, _, err = run_cli(["hub", "serve", "--dir", str(tmp_path / "store"), "--tokens", str(path)], capsys)
    assert code == 2 and str(path) in err and f"chmod 600 {path}" in err


@pytest.mark.parametrize(("mode", "refused"), [(0o777, True), (0o770, True), (0o1777, False), (0o755, False)])
def test_a_tokens_file_in_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int, refused: bool) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = write_private(folder / "tokens.yaml", ADMIN_BY_DIGEST)
    folder.chmod(mode)
    if refused:
        with pytest.raises(HubConfigError, match=f"other users can write its folder {folder}"):
            load_tokens_file(path)
    else:
        assert load_tokens_file(path).lookup(ADMIN) is not None


def test_a_tokens_file_others_can_read_is_refused_with_plain_tokens_and_named_with_digests(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text(TOKENS_YAML)
    plain.chmod(0o644)
    with pytest.raises(HubConfigError, match=r"other users can read this tokens file .* plain `token:`"):
        load_tokens_file(plain)
    digests = tmp_path / "digests.yaml"
    digests.write_text(ADMIN_BY_DIGEST)
    digests.chmod(0o640)
    warnings: list[str] = []
    assert load_tokens_file(digests, warn=warnings.append).lookup(ADMIN) is not None
    assert warnings == [f"{digests}: other users can read this tokens file (mode -rw-r-----): chmod 600 {digests}"]
    digests.chmod(0o600)
    warnings.clear()
    assert load_tokens_file(digests, warn=warnings.append).lookup(ADMIN) is not None and warnings == []


def test_hub_serve_names_a_readable_tokens_file_in_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(ADMIN_BY_DIGEST)
    path.chmod(0o644)
    with serving(path) as (url, written):
        assert HfApi(endpoint=url, token=ADMIN).whoami()["name"] == "admin"
    warning = f"warning: {path}: other users can read this tokens file (mode -rw-r--r--): chmod 600 {path}"
    assert warning in written[-1]


def test_hub_new_token_adds_to_a_tokens_file_made_0600(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hub-tokens.yaml"
    code, out, _ = run_cli(["hub", "new-token", "ci", "--namespace", "team", "--tokens", str(path)], capsys)
    assert code == 0 and f"added to {path}" in out
    first = out.split("): ", 1)[1].split()[0]
    assert path.stat().st_mode & 0o777 == 0o600
    assert first not in path.read_text()
    code, out, _ = run_cli(["hub", "new-token", "auditor", "--read-only", "--tokens", str(path)], capsys)
    second = out.split("): ", 1)[1].split()[0]
    table = load_tokens_file(path)
    ci, auditor = table.lookup(first), table.lookup(second)
    assert ci is not None and ci.can_write("team") and auditor is not None and auditor.read_only
    assert path.stat().st_mode & 0o777 == 0o600


def test_hub_new_token_leaves_a_file_it_cannot_add_to_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_file = write_private(tmp_path / "tokens.json", json.dumps({"tokens": [{"name": "ci", "token": CI}]}))
    before = json_file.read_bytes()
    code, _, err = run_cli(["hub", "new-token", "bob", "--tokens", str(json_file)], capsys)
    assert code == 2 and "does not fit this file's layout" in err and "sha256: " in err
    assert json_file.read_bytes() == before
    writable = tmp_path / "writable.yaml"
    writable.write_text(ADMIN_BY_DIGEST)
    writable.chmod(0o666)
    code, _, err = run_cli(["hub", "new-token", "bob", "--tokens", str(writable)], capsys)
    assert code == 2 and "other users can write" in err and writable.read_text() == ADMIN_BY_DIGEST
