"""Items 5 (server side), 6, 9 and 11: a body is exactly its Content-Length, read after the token, within a cap.

Before: a commit body cut short committed what had arrived, a chunked one made an empty commit,
a bad Content-Length or a deeply nested JSON dropped the connection with a traceback, invalid
base64 committed an empty file, and an anonymous body was read whole before the 401.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubpub.hub import HubServer, Limits
from tests.hub.harness import ALICE, TOKENS, Connection, Hub, add_file, commit_body, exchange, json_request, request

COMMIT = "/api/models/alice/repo/commit/main"


@pytest.fixture
def head(hub: Hub) -> str:
    hub.api().create_repo("alice/repo")
    return str(hub.api().model_info("alice/repo").sha)


def assert_unchanged(hub: Hub, head: str) -> None:
    assert hub.api().model_info("alice/repo").sha == head
    assert hub.api().list_repo_files("alice/repo") == [".gitattributes"]


def test_a_commit_body_cut_short_commits_nothing(hub: Hub, head: str) -> None:
    body = commit_body(add_file("README.md", b"new card"), add_file("model.bin", b"weights" * 1000))
    cut = body[: body.index(b'{"key": "file", "value": {"path": "model.bin"')]
    with Connection(hub.url) as connection:
        connection.send(
            request("POST", COMMIT, token=ALICE, content_length=False, headers={"Content-Length": str(len(body))})
        )
        connection.send(cut)
        connection.sock.shutdown(socket.SHUT_WR)
        reply = connection.reply()
    assert reply.status == 400 and b"cut short" in reply.body
    assert_unchanged(hub, head)


def test_a_commit_body_that_stalls_times_out_and_commits_nothing(tmp_path: Path) -> None:
    with HubServer(tmp_path / "store", tokens=TOKENS, limits=Limits(socket_timeout=0.5)) as server:
        hub = Hub(server, tmp_path / "store", [])
        hub.api().create_repo("alice/repo")
        head = str(hub.api().model_info("alice/repo").sha)
        body = commit_body(add_file("README.md", b"new card"))
        raw = request("POST", COMMIT, token=ALICE, content_length=False, headers={"Content-Length": str(len(body))})
        with Connection(hub.url) as connection:
            connection.send(raw + body[:-5])
            reply = connection.reply()
        assert reply.status == 408
        assert_unchanged(hub, head)


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def test_a_chunked_commit_is_refused_with_411_and_makes_no_commit(hub: Hub, head: str) -> None:
    body = commit_body(add_file("README.md", b"card"))
    raw = request("POST", COMMIT, token=ALICE, content_length=False, headers={"Transfer-Encoding": "chunked"})
    with Connection(hub.url) as connection:
        connection.send(raw + chunked(body))
        reply = connection.reply()
        assert reply.status == 411 and reply.headers["connection"] == "close"
        assert connection.closed_by_server()
    assert_unchanged(hub, head)


@pytest.mark.parametrize("value", ["abc", "-5", "10" + "0" * 11, "1" * 40, "+5", "0x10", "5, 6", " ", "1e3"], ids=repr)
def test_a_bad_content_length_gets_an_answer_not_a_dropped_connection(hub: Hub, head: str, value: str) -> None:
    raw = request("POST", COMMIT, b"", token=ALICE, content_length=False, headers={"Content-Length": value})
    reply = exchange(hub.url, raw)
    assert 400 <= reply.status < 500, reply.body
    assert_unchanged(hub, head)


def test_two_different_content_lengths_are_refused(hub: Hub, head: str) -> None:
    raw = request("POST", COMMIT, b"{}", token=ALICE, content_length=False)
    raw = raw.replace(b"\r\n\r\n", b"\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 1)
    assert exchange(hub.url, raw).status == 400


def test_a_post_without_content_length_gets_411(hub: Hub) -> None:
    assert exchange(hub.url, request("POST", "/api/repos/create", token=ALICE, content_length=False)).status == 411


def test_each_route_caps_its_body_with_413_before_reading_it(hub: Hub, head: str) -> None:
    for target, size in (("/api/repos/create", 2 << 20), ("/api/validate-yaml", 17 << 20), (COMMIT, 129 << 20)):
        started = time.monotonic()
        raw = request("POST", target, token=ALICE, content_length=False, headers={"Content-Length": str(size)})
        assert exchange(hub.url, raw).status == 413
        assert time.monotonic() - started < 3.0
    assert_unchanged(hub, head)


def test_the_token_is_checked_before_the_body_is_read(hub: Hub, head: str) -> None:
    """An anonymous 100 MB commit gets its 401 without the server waiting for (or keeping) the body."""
    size = 100 << 20
    for token in (None, "hf_wrong_token_000000000"):
        raw = request("POST", COMMIT, token=token, content_length=False, headers={"Content-Length": str(size)})
        with Connection(hub.url, timeout=3.0) as connection:
            connection.send(raw)
            reply = connection.reply()
        assert reply.status == 401
    assert hub.server.received_bytes["commit"] == 2 * size  # declared, never buffered
    assert_unchanged(hub, head)


def test_a_client_that_sends_a_refused_body_anyway_still_reads_the_answer(hub: Hub) -> None:
    body = b"x" * (8 << 20)
    raw = request("POST", COMMIT, body, token=None)
    with Connection(hub.url) as connection:
        sender = threading.Thread(target=lambda: _send_quietly(connection.sock, raw), daemon=True)
        sender.start()
        reply = connection.reply()
        sender.join(timeout=5)
    assert reply.status == 401


def _send_quietly(sock: socket.socket, raw: bytes) -> None:
    with contextlib.suppress(OSError):  # the server may close once it has answered
        sock.sendall(raw)


DEEP = b"[" * 100_000 + b"]" * 100_000


def malformed_requests() -> Iterator[tuple[str, bytes]]:
    """The catalogue of item 9, each as raw bytes; every one must get a 4xx JSON answer."""
    repo_api = "/api/models/alice/repo"
    for name, body in {
        "commit line is a list": b'[1, 2]\n{"key": "file"}',
        "commit line is a string": b'"header"',
        "commit value is a list": b'{"key": "header", "value": []}',
        "commit header missing": b'{"key": "deletedFile", "value": {"path": "a"}}',
        "commit header twice": commit_body() + b"\n" + commit_body(),
        "commit key unknown": commit_body({"key": "rmrf", "value": {"path": "a"}}),
        "commit file without path": commit_body({"key": "file", "value": {"content": ""}}),
        "commit file path is a number": commit_body({"key": "file", "value": {"path": 7, "content": ""}}),
        "commit invalid base64": commit_body(
            {"key": "file", "value": {"path": "a.txt", "content": "!!!not base64!!!"}}
        ),
        "commit base64 with junk": commit_body({"key": "file", "value": {"path": "a.txt", "content": "YWJj\n$$"}}),
        "commit other encoding": commit_body(
            {"key": "file", "value": {"path": "a", "content": "", "encoding": "utf-8"}}
        ),
        "commit lfs size negative": commit_body(
            {"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64, "size": -1}}
        ),
        "commit lfs size string": commit_body({"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64, "size": "1"}}),
        "commit lfs other algo": commit_body(
            {"key": "lfsFile", "value": {"path": "a", "oid": "0" * 64, "algo": "md5"}}
        ),
        "commit parent is a number": commit_body().replace(
            b'"description": ""', b'"description": "", "parentCommit": 7'
        ),
        "commit summary is a dict": commit_body().replace(b'"summary": "test"', b'"summary": {}'),
        "commit nested 100000 deep": DEEP,
        "commit not utf-8": b'{"key": "header", "value": {"summary": "\xff\xfe"}}',
        "commit path not utf-8": commit_body().replace(b'"test"', b'"t"')
        + b'\n{"key": "file", "value": {"path": "\xc3\x28", "content": ""}}',
    }.items():
        yield name, request("POST", f"{repo_api}/commit/main", body, token=ALICE)
    for name, data in {
        "create without name": {"organization": "alice"},
        "create name is a list": {"name": ["x"]},
        "create type unknown": {"name": "x", "type": "notebook"},
        "create visibility odd": {"name": "x", "visibility": "secret"},
        "create private is a string": {"name": "x", "private": "yes"},
        "create body is a list": [1, 2, 3],
        "create name overlong": {"name": "n" * 5000},
    }.items():
        yield name, json_request("POST", "/api/repos/create", data)
    yield "create nested 100000 deep", request("POST", "/api/repos/create", DEEP, token=ALICE)
    yield "create body not json", request("POST", "/api/repos/create", b"{name: x", token=ALICE)
    yield "tag without tag", json_request("POST", f"{repo_api}/tag/main", {"message": "x"})
    yield "tag is a number", json_request("POST", f"{repo_api}/tag/main", {"tag": 1})
    yield "preupload without files", json_request("POST", f"{repo_api}/preupload/main", {})
    yield "preupload without path", json_request("POST", f"{repo_api}/preupload/main", {"files": [{"size": 1}]})
    yield "preupload file is a string", json_request("POST", f"{repo_api}/preupload/main", {"files": ["a"]})
    yield (
        "preupload sample not base64",
        json_request("POST", f"{repo_api}/preupload/main", {"files": [{"path": "a", "size": 1, "sample": "%%%"}]}),
    )
    yield "batch objects is a dict", json_request("POST", "/alice/repo.git/info/lfs/objects/batch", {"objects": {}})
    yield (
        "batch size huge",
        json_request(
            "POST", "/alice/repo.git/info/lfs/objects/batch", {"objects": [{"oid": "0" * 64, "size": 10**30}]}
        ),
    )
    yield "settings body is a string", json_request("PUT", f"{repo_api}/settings", "public")
    yield "paths-info not utf-8", request("POST", f"{repo_api}/paths-info/main", b"paths=%FF", token=ALICE)
    yield "validate-yaml content is a list", json_request("POST", "/api/validate-yaml", {"content": []})
    yield "query not utf-8", request("GET", f"{repo_api}/tree/main?recursive=%FF")
    yield "url path not utf-8", request("GET", f"{repo_api}/tree/main/%FF%FE")


MALFORMED = list(malformed_requests())


def test_every_malformed_request_gets_a_4xx_json_answer_and_one_log_line(hub: Hub, head: str) -> None:
    hub.log.clear()
    for name, raw in MALFORMED:
        with Connection(hub.url) as connection:
            connection.send(raw)
            reply = connection.reply()
            assert 400 <= reply.status < 500, (name, reply.status, reply.body)
            assert "error" in reply.json() or "errors" in reply.json(), name  # type: ignore[operator]
            if reply.headers.get("connection") != "close":  # the connection is still good for the next request
                connection.send(request("GET", "/api/models/alice/repo", token=ALICE))
                assert connection.reply().status == 200, name
    assert len(hub.log) == len(MALFORMED)
    assert not any("Traceback" in line or ALICE in line for line in hub.log)
    assert_unchanged(hub, head)


def test_invalid_base64_never_becomes_an_empty_file(hub: Hub, head: str) -> None:
    body = commit_body({"key": "file", "value": {"path": "empty.txt", "content": "@@@@", "encoding": "base64"}})
    assert exchange(hub.url, request("POST", COMMIT, body, token=ALICE)).status == 400
    assert_unchanged(hub, head)


def test_a_json_body_nested_100000_deep_is_a_400(hub: Hub) -> None:
    reply = exchange(hub.url, request("POST", "/api/validate-yaml", DEEP))
    assert reply.status == 400 and json.loads(reply.body)["error"]


def test_expect_100_continue_is_answered_only_once_the_token_is_good(hub: Hub, head: str) -> None:
    body = commit_body(add_file("a.txt", b"a"))
    expect = {"Expect": "100-continue", "Content-Length": str(len(body))}
    with Connection(hub.url) as connection:
        connection.send(request("POST", COMMIT, token="hf_wrong_token_000000000", content_length=False, headers=expect))
        reply = connection.reply()
        assert reply.status == 401 and connection.closed_by_server()
    with Connection(hub.url) as connection:
        connection.send(request("POST", COMMIT, token=ALICE, content_length=False, headers=expect))
        assert connection.reply().status == 100
        connection.send(body)
        assert connection.reply().status == 200
    assert hub.api().list_repo_files("alice/repo") == [".gitattributes", "a.txt"]


BILLION_LAUGHS = (
    "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + level)}: &{chr(98 + level)} [*{chr(97 + level)}, *{chr(97 + level)}, *{chr(97 + level)},"
        f" *{chr(97 + level)}, *{chr(97 + level)}, *{chr(97 + level)}, *{chr(97 + level)}, *{chr(97 + level)}]\n"
        for level in range(9)
    )
    + "---\n# card\n"
)


def test_card_metadata_that_would_explode_or_is_huge_is_refused_quickly(hub: Hub) -> None:
    started = time.monotonic()
    for content in (BILLION_LAUGHS, "---\nk: " + "v" * (2 << 20) + "\n---\n", "---\n" + "[" * 5000 + "\n---\n"):
        reply = exchange(hub.url, json_request("POST", "/api/validate-yaml", {"content": content}))
        assert reply.status == 400 and reply.json()["errors"], reply.body  # type: ignore[index]
    hub.api().create_repo("alice/laughs")  # a raw commit: the client itself would stop at validate-yaml
    body = commit_body(add_file("README.md", BILLION_LAUGHS.encode()))
    assert exchange(hub.url, request("POST", "/api/models/alice/laughs/commit/main", body, token=ALICE)).status == 200
    assert hub.api().model_info("alice/laughs").card_data is None
    assert time.monotonic() - started < 10
