"""Raw files cannot run in the Hub's origin: an uploaded page or SVG with a script is sent as a download that a
browser neither sniffs nor renders; and every answer, of any kind, says `nosniff`."""

from __future__ import annotations

import http.client
from pathlib import Path
from urllib.parse import quote, urlsplit

from huggingface_hub import hf_hub_download, snapshot_download

from tests.hub.harness import ALICE, Hub, exchange, request

HOSTILE_FILES = {
    "index.html": b"<!doctype html><html><body><script>document.title='pwned'</script></body></html>",
    "images/logo.svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(document.domain)</script></svg>'
    ),
    'odd "name"\u00fc.htm': b"<script>alert(1)</script>",
    "notes.txt": b"<html><script>alert('sniff me')</script></html>",
}


def _publish(hub: Hub) -> None:
    api = hub.api()
    api.create_repo("alice/site")
    for path, content in HOSTILE_FILES.items():
        api.upload_file(path_or_fileobj=content, path_in_repo=path, repo_id="alice/site")


def _get(
    hub: Hub, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> http.client.HTTPResponse:
    split = urlsplit(hub.url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10)
    connection.request(method, target, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_an_uploaded_page_or_svg_with_a_script_is_a_download_that_runs_nothing(hub: Hub) -> None:
    _publish(hub)
    for path, content in HOSTILE_FILES.items():
        target = f"/alice/site/resolve/main/{quote(path)}"
        for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"})):
            answer = _get(hub, target, method=method, headers=headers)
            assert answer.status == (206 if headers else 200), (path, method)
            assert answer.headers["Content-Type"] == "application/octet-stream"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["Content-Security-Policy"] == "sandbox; default-src 'none'"
            name = path.rsplit("/", 1)[-1]
            ascii_name = name.replace('"', "_").replace(" ", "_").replace("\u00fc", "_")
            assert answer.headers["Content-Disposition"] == (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
            )
        assert int(_get(hub, target, method="HEAD").headers["Content-Length"]) == len(content)


def test_hf_hub_download_and_snapshot_download_keep_names_and_bytes(hub: Hub, tmp_path: Path) -> None:
    _publish(hub)
    for path, content in HOSTILE_FILES.items():
        local = Path(hf_hub_download("alice/site", path, endpoint=hub.url, token=ALICE, cache_dir=tmp_path / "one"))
        assert local.name == path.rsplit("/", 1)[-1] and local.read_bytes() == content
    folder = Path(snapshot_download("alice/site", endpoint=hub.url, token=ALICE, cache_dir=tmp_path / "all"))
    assert {str(file.relative_to(folder)) for file in folder.rglob("*") if file.is_file()} == {
        ".gitattributes",
        *HOSTILE_FILES,
    }
    assert all((folder / path).read_bytes() == content for path, content in HOSTILE_FILES.items())


def test_every_answer_says_nosniff(hub: Hub) -> None:
    _publish(hub)
    answers = {
        "api json": exchange(hub.url, request("GET", "/api/whoami-v2", token=ALICE)),
        "api error": exchange(hub.url, request("GET", "/api/models/alice/missing", token=ALICE)),
        "listing": exchange(hub.url, request("GET", "/api/models")),
        "page": exchange(hub.url, request("GET", "/")),
        "page error": exchange(hub.url, request("GET", "/alice/missing")),
        "stylesheet": exchange(hub.url, request("GET", "/-/pages.css")),
        "raw file": exchange(hub.url, request("GET", "/alice/site/resolve/main/index.html")),
        "missing file": exchange(hub.url, request("GET", "/alice/site/resolve/main/nope.html")),
        "range past the end": exchange(
            hub.url, request("GET", "/alice/site/resolve/main/index.html", headers={"Range": "bytes=999999-"})
        ),
        "unparsable request": exchange(hub.url, b"NONSENSE\r\n\r\n"),
        "no route": exchange(hub.url, request("BREW", "/pot")),
    }
    statuses = {name: reply.status for name, reply in answers.items()}
    assert statuses == {
        "api json": 200,
        "api error": 404,
        "listing": 200,
        "page": 200,
        "page error": 404,
        "stylesheet": 200,
        "raw file": 200,
        "missing file": 404,
        "range past the end": 416,
        "unparsable request": 400,
        "no route": 501,
    }
    assert {name: reply.headers.get("x-content-type-options") for name, reply in answers.items()} == dict.fromkeys(
        answers, "nosniff"
    )
