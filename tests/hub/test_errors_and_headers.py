"""Item 10 and the catch-all: header values cannot be split or broken, surprises are a plain 500, one log line each.

Before: CR/LF decoded from a URL path went into `X-Error-Message` as is (a header injection),
error text outside Latin-1 dropped the connection, and a bug showed the client a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub.hub import HubStore
from tests.hub.harness import ALICE, Connection, Hub, exchange, request


def header_lines(raw_headers: bytes) -> list[bytes]:
    return raw_headers.split(b"\r\n")[1:]


@pytest.mark.parametrize(
    "target",
    [
        "/api/models/alice/x%0D%0ASet-Cookie:%20pwned=1",
        "/alice/x%0ASet-Cookie:%20pwned=1/resolve/main/a",
        "/api/models/alice/repo/tree/main/a%0D%0ASet-Cookie:%20pwned=1",
        "/alice/repo/resolve/main/a%0D%0ASet-Cookie:%20pwned=1",
        "/api/models/alice/repo/revision/v%0D%0ASet-Cookie:%20pwned=1",
    ],
)
def test_cr_lf_in_a_url_never_splits_a_header(hub: Hub, target: str) -> None:
    hub.api().create_repo("alice/repo")
    for method in ("GET", "HEAD"):
        reply = exchange(hub.url, request(method, target, token=ALICE), head=method == "HEAD")
        assert 400 <= reply.status < 500
        assert not any(line.lower().startswith(b"set-cookie") for line in header_lines(reply.raw_headers))
        assert all(0x20 <= byte < 0x7F for line in header_lines(reply.raw_headers) for byte in line)


@pytest.mark.parametrize("target", ["/api/models/alice/%E2%9C%85", "/alice/repo/resolve/main/%E2%9C%85.txt"])
def test_error_text_outside_latin_1_gets_an_answer(hub: Hub, target: str) -> None:
    hub.api().create_repo("alice/repo")
    reply = exchange(hub.url, request("GET", target, token=ALICE))
    assert reply.status in (400, 404)
    assert "\\u2705" in reply.body.decode("ascii")
    assert reply.headers["x-error-message"].isascii()


def test_an_unexpected_error_is_a_plain_500_with_no_traceback(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.api().create_repo("alice/repo")

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom at /secret/server/path")

    monkeypatch.setattr(HubStore, "tree", broken)
    hub.log.clear()
    with Connection(hub.url) as connection:
        connection.send(request("GET", "/api/models/alice/repo/tree/main", token=ALICE))
        reply = connection.reply()
        assert reply.status == 500 and reply.json() == {"error": "Internal Server Error"}
        connection.send(request("GET", "/api/whoami-v2", token=ALICE))
        assert connection.reply().status == 200
    assert hub.log == ["hub: 500 GET /api/models/alice/repo/tree/main: internal error (RuntimeError)"]


@pytest.mark.parametrize(
    "raw",
    [
        b"PATCH /api/whoami-v2 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET /api/whoami-v2 HTTP/9.9\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(150)) + b"\r\n",
        b"GET / HTTP/1.1\r\nX-Long: " + b"y" * 70_000 + b"\r\n\r\n",
        b"GET /\x00\xff HTTP/1.1\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"GET //[ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64) + b"\r\n\r\n",
    ],
    ids=["method", "version", "long-line", "many-headers", "long-header", "bytes", "nul-method", "bad-url", "tls"],
)
def test_a_request_the_parser_refuses_gets_a_json_answer(hub: Hub, raw: bytes) -> None:
    hub.log.clear()
    reply = exchange(hub.url, raw)
    assert 400 <= reply.status < 600
    assert "error" in reply.json()  # type: ignore[operator]
    assert len(hub.log) == 1 and "Traceback" not in hub.log[0]


def test_hub_serve_logs_one_line_per_refusal_and_never_a_token(tmp_path: Path) -> None:
    token = "hf_serve_token_0123456789"
    command = [sys.executable, "-m", "hubpub", "hub", "serve", "--dir", str(tmp_path / "served"), "--port", "0"]
    environment = {**os.environ, "HUBPUB_HUB_TOKEN": token}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().rsplit(" at ", 1)[1].strip()
        api = HfApi(endpoint=url, token=token)
        api.create_repo("hubpub/served")
        refused = [
            request("GET", "/api/models/hubpub/..%2Fx", token=token),
            request("POST", "/api/models/hubpub/served/commit/main", b"[[[", token=token),
            request("GET", "/api/whoami-v2", token=token + "x"),
            request("GET", "/api/models/hubpub/served/revision/nope", token=token),
            b"BREW /pot HTTP/1.1\r\nAuthorization: Bearer " + token.encode() + b"\r\n\r\n",
        ]
        for raw in refused:
            assert exchange(url, raw).status >= 400
        api.upload_file(path_or_fileobj=b"ok", path_in_repo="ok.txt", repo_id="hubpub/served")
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    lines = [line for line in stderr.splitlines() if line.startswith("hub: ")]
    assert len(lines) == len(refused), stderr
    assert token not in stderr and "Traceback" not in stderr
    assert all(re.fullmatch(r"hub: [45]\d\d \S+ \S*: .+", line) for line in lines), lines
