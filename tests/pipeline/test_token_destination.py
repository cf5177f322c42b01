"""hubpub sends a token only to the Hub it belongs to: an $HF_ENDPOINT that someone else set (a job pointing it at
its own listener) never receives the token `hf auth login` stored in $HF_HOME.

The listener is a real HTTP server on 127.0.0.1 that records every request's Authorization header and answers
404, as a Hub answers for a repo it does not hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hubpub.errors import PublishError
from hubpub.hubclient import open_target

OWNER_TOKEN = "hf_owner_token_from_hf_auth_login"


class Listener:
    """An HTTP server that records (method, path, Authorization) of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                seen.append((self.command, self.path, self.headers.get("Authorization")))
                body = json.dumps({"error": "Repository not found"}).encode()
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def tokens(self) -> list[str | None]:
        return [authorization for _, _, authorization in self.seen]


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def owner_home(tmp_path: Path) -> Path:
    """An HF_HOME holding the server owner's token, as `hf auth login` writes it."""
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(OWNER_TOKEN)
    return home


def environment(home: Path, endpoint: str, **extra: str) -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if key not in ("HF_TOKEN", "HF_HUB_DISABLE_IMPLICIT_TOKEN")}
    return {**kept, "HF_HOME": str(home), "HF_ENDPOINT": endpoint, "NO_PROXY": "127.0.0.1", **extra}


def hubpub(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hubpub", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


SPEC = "base_model: victim/model\nrepo_id: attacker/m\nscheme: W8A16\nverify:\n  vllm: off\n"


@pytest.mark.timeout(600)
def test_release_no_push_sends_the_stored_token_to_no_other_endpoint(
    tmp_path: Path, listener: Listener, owner_home: Path
) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = hubpub(["release", "spec.yaml", "--no-push"], tmp_path, environment(owner_home, listener.url))
    assert result.returncode == 3, result.stderr
    assert "base model victim/model was not found on the Hub (or needs a token)" in result.stderr
    assert ("GET", "/api/models/victim/model", None) in listener.seen
    assert listener.tokens and set(listener.tokens) == {None}


def test_hf_token_given_with_hf_endpoint_goes_there(tmp_path: Path, listener: Listener, owner_home: Path) -> None:
    """The control: the listener does see a token when one belongs to it (HF_TOKEN set beside HF_ENDPOINT)."""
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = environment(owner_home, listener.url, HF_TOKEN="hf_job_token_for_this_endpoint")
    result = hubpub(["plan", "spec.yaml"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert listener.tokens and set(listener.tokens) == {"Bearer hf_job_token_for_this_endpoint"}


def test_plan_reads_the_base_config_without_the_stored_token(
    tmp_path: Path, listener: Listener, owner_home: Path
) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = hubpub(["plan", "spec.yaml"], tmp_path, environment(owner_home, listener.url))
    assert result.returncode == 0, result.stderr
    assert any(path.endswith("/victim/model/resolve/main/config.json") for _, path, _ in listener.seen)
    assert set(listener.tokens) == {None}


@pytest.mark.parametrize("hub", ["hf", "{url}"])
def test_publishing_elsewhere_than_huggingface_co_refuses_the_stored_token(
    tmp_path: Path, listener: Listener, owner_home: Path, monkeypatch: pytest.MonkeyPatch, hub: str
) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(owner_home / "token"))
    monkeypatch.setenv("HF_ENDPOINT", listener.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(PublishError) as refused, open_target(hub.format(url=listener.url), local_dir=tmp_path):
        pass
    assert str(refused.value) == (
        f"no token for {listener.url}: set HF_TOKEN (the token `hf auth login` stored is sent to"
        " https://huggingface.co only)"
    )
    assert listener.seen == []


IMPLICIT = """
import contextlib, os, sys
from hubpub.hubclient import implicit_token_guarded
from huggingface_hub import HfApi
with implicit_token_guarded() if sys.argv[1] == "guarded" else contextlib.nullcontext():
    try:
        HfApi().model_info("victim/model")  # what datasets and lm-eval do: no token given, huggingface_hub finds one
    except Exception as exc:
        print(type(exc).__name__)
print(os.environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN"))  # put back after: the caller's setting is its own
"""


def test_libraries_that_find_the_token_themselves_send_it_nowhere_else(
    tmp_path: Path, listener: Listener, owner_home: Path
) -> None:
    env = environment(owner_home, listener.url)
    unguarded = subprocess.run(
        [sys.executable, "-c", IMPLICIT, "unguarded"], env=env, capture_output=True, text=True, timeout=120
    )
    assert unguarded.stdout.split() == ["RepositoryNotFoundError", "None"], unguarded.stderr
    assert listener.tokens == [f"Bearer {OWNER_TOKEN}"], "huggingface_hub no longer sends it implicitly?"
    listener.seen.clear()
    guarded = subprocess.run(
        [sys.executable, "-c", IMPLICIT, "guarded"], env=env, capture_output=True, text=True, timeout=120
    )
    assert guarded.stdout.split() == ["RepositoryNotFoundError", "None"], guarded.stderr
    assert listener.tokens == [None]


CALIBRATION = """
from hubpub.calibration import read_rows
from hubpub.spec import Calibration
try:
    read_rows(Calibration(dataset="victim/data"))
except Exception as exc:
    print(type(exc).__name__)
"""


@pytest.mark.timeout(300)
def test_a_hub_calibration_dataset_is_read_without_the_stored_token(
    tmp_path: Path, listener: Listener, owner_home: Path
) -> None:
    env = environment(owner_home, listener.url)
    result = subprocess.run([sys.executable, "-c", CALIBRATION], env=env, capture_output=True, text=True, timeout=240)
    assert result.stdout.strip() == "StageError", result.stderr
    assert listener.seen and set(listener.tokens) == {None}
