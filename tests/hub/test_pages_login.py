"""Attacks on the web pages' login: DNS rebinding, a forged Host in links, a cookie replayed after logout or
after its token left, guessed cookies, and guessing tokens at the login form."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from hubpub.hub import HubConfigError, HubServer, Limits
from hubpub.hub.hosts import PublicURL
from hubpub.hub.sessions import LoginLimiter, Sessions
from hubpub.hub.tokens import TokenTable, token_digest
from tests.conftest import run_cli
from tests.hub.demo_family import DEMO_TOKEN, EVE_TOKEN, PRIVATE, TOKENS
from tests.hub.test_pages import Page, fetch

PUBLIC = "https://hub.example.com"


def log_in(
    hub: HubServer, token: str, *, host: str | None = None, origin: str | None = "", source: str = "127.0.0.1"
) -> Page:
    """A login form post; `origin` "" sends the Hub's own origin, None sends none."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin is not None:
        headers["Origin"] = origin or hub.url
    if host is not None:
        headers["Host"] = host
    body = urlencode({"token": token, "next": f"/{PRIVATE}"}).encode()
    return fetch(hub, "/-/login", method="POST", headers=headers, body=body, source=source)


def cookie_of(answer: Page) -> dict[str, str]:
    assert answer.status == 303, answer.text
    return {"Cookie": answer.headers["Set-Cookie"].split(";")[0]}


@pytest.fixture
def hub(demo_store: Path) -> Iterator[HubServer]:
    with HubServer(demo_store, tokens=dict(TOKENS)) as server:
        yield server


def test_dns_rebinding_cannot_log_in_or_out(hub: HubServer) -> None:
    port = urlsplit(hub.url).port
    rebound = f"evil.example:{port}"
    attempts = [
        (rebound, f"http://{rebound}"),  # the page's own name in both: it agrees with itself
        (rebound, None),
        (f"127.0.0.1:{port}", f"http://{rebound}"),
        (f"127.0.0.1:{port}", "http://127.0.0.1:1"),  # another service on this machine
        (f"127.0.0.1:{port}", "null"),
        ("127.0.0.1", "http://127.0.0.1"),
        (f"localhost.evil.example:{port}", f"http://localhost.evil.example:{port}"),
    ]
    for host, origin in attempts:
        answer = log_in(hub, DEMO_TOKEN, host=host, origin=origin)
        assert answer.status == 403, (host, origin)
        assert "Set-Cookie" not in answer.headers
    cookie = cookie_of(log_in(hub, DEMO_TOKEN))
    headers = {**cookie, "Host": rebound, "Origin": f"http://{rebound}", "Content-Length": "0"}
    assert fetch(hub, "/-/logout", method="POST", headers=headers).status == 403
    assert fetch(hub, f"/{PRIVATE}", headers=cookie).status == 200, "the refused logout ended nothing"
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
        answer = log_in(hub, DEMO_TOKEN, host=host, origin=f"http://{host}")
        assert answer.status == 303, host
    assert log_in(hub, DEMO_TOKEN, origin=None).status == 303


def test_links_never_name_a_forged_host(tmp_path: Path) -> None:
    with HubServer(tmp_path / "store", tokens=dict(TOKENS)) as hub:
        port = urlsplit(hub.url).port
        for number, (host, expected) in enumerate(
            [
                (f"evil.example:{port}", hub.url),
                ("evil.example", hub.url),
                (f"localhost:{port}", f"http://localhost:{port}"),
            ]
        ):
            body = json.dumps({"name": f"model-{number}", "organization": "demo"}).encode()
            headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Host": host, "Content-Type": "application/json"}
            answer = fetch(hub, "/api/repos/create", method="POST", headers=headers, body=body)
            assert answer.status == 200, answer.text
            assert json.loads(answer.text)["url"] == f"{expected}/demo/model-{number}"


def test_the_public_url_is_accepted_for_the_login_and_named_in_links(tmp_path: Path) -> None:
    with HubServer(tmp_path / "store", tokens=dict(TOKENS), public_url=PUBLIC) as hub:
        port = urlsplit(hub.url).port
        assert log_in(hub, DEMO_TOKEN, host="hub.example.com", origin=PUBLIC).status == 303
        assert log_in(hub, DEMO_TOKEN, host="hub.example.com:443", origin=PUBLIC).status == 303
        # A reverse proxy that passes its own Host to the Hub: the origin is still the public one.
        assert log_in(hub, DEMO_TOKEN, host=f"127.0.0.1:{port}", origin=PUBLIC).status == 303
        assert log_in(hub, DEMO_TOKEN, host="hub.example.com", origin="http://hub.example.com").status == 403
        assert log_in(hub, DEMO_TOKEN, host="evil.example", origin="https://evil.example").status == 403
        for number, host in enumerate(("hub.example.com", "evil.example")):
            body = json.dumps({"name": f"model-{number}", "organization": "demo"}).encode()
            headers = {"Authorization": f"Bearer {DEMO_TOKEN}", "Host": host, "Content-Type": "application/json"}
            answer = fetch(hub, "/api/repos/create", method="POST", headers=headers, body=body)
            assert json.loads(answer.text)["url"] == f"{PUBLIC}/demo/model-{number}"


@pytest.mark.parametrize(
    "url",
    ["hub.example.com", "ftp://hub.example.com", "https://hub.example.com/hub", "https://me@hub.example.com",
     "https://hub.example.com:99999", "https://hub.example.com/?x=1", "https://exa mple.com", "https://"],
)  # fmt: skip
def test_a_public_url_that_is_not_an_origin_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(HubConfigError, match="--public-url"):
        HubServer(tmp_path / "store", tokens=dict(TOKENS), public_url=url)
    assert PublicURL.parse("http://[::1]:8080/").origin == "http://[::1]:8080"


def test_hub_serve_exits_2_on_a_public_url_that_is_not_an_origin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["hub", "serve", "--dir", str(tmp_path / "store"), "--port", "0", "--public-url", "hub.example.com"]
    code, out, err = run_cli(arguments, capsys)
    assert code == 2 and "--public-url 'hub.example.com': give http(s)://HOST[:PORT]" in err and not out


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_hub_serve_on_every_address_needs_a_public_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: str
) -> None:
    # Links built for a wildcard address (upload links included) would lead clients nowhere.
    arguments = ["hub", "serve", "--dir", str(tmp_path / "store"), "--host", host, "--port", "0"]
    code, out, err = run_cli(arguments, capsys)
    assert code == 2 and f"--host {host} listens on every address" in err and "--public-url URL" in err
    assert not out and not (tmp_path / "store").exists()


def test_a_cookie_replayed_after_logout_shows_nothing_private(hub: HubServer) -> None:
    cookie = cookie_of(log_in(hub, DEMO_TOKEN))
    assert fetch(hub, f"/{PRIVATE}", headers=cookie).status == 200
    assert fetch(hub, f"/{PRIVATE}/resolve/main/README.md", headers=cookie).status == 200
    logout = {**cookie, "Origin": hub.url, "Content-Length": "0"}
    answer = fetch(hub, "/-/logout", method="POST", headers=logout)
    assert answer.status == 303 and "Max-Age=0" in answer.headers["Set-Cookie"]
    assert fetch(hub, f"/{PRIVATE}", headers=cookie).status == 404
    assert fetch(hub, f"/{PRIVATE}/resolve/main/README.md", headers=cookie).status == 404
    index = fetch(hub, "/", headers=cookie)
    assert PRIVATE not in index.text and "not valid on this Hub" in index.text


def test_a_token_taken_out_of_the_table_ends_its_sessions(hub: HubServer) -> None:
    demo, eve = cookie_of(log_in(hub, DEMO_TOKEN)), cookie_of(log_in(hub, EVE_TOKEN))
    assert fetch(hub, f"/{PRIVATE}", headers=demo).status == 200
    del hub.tokens.by_digest[token_digest(DEMO_TOKEN)]
    assert fetch(hub, f"/{PRIVATE}", headers=demo).status == 404
    assert "signed in as <strong>eve</strong>" in fetch(hub, "/", headers=eve).text, "other sessions stay"


def test_a_session_expires(demo_store: Path) -> None:
    with HubServer(demo_store, tokens=dict(TOKENS), limits=Limits(session_seconds=1)) as hub:
        answer = log_in(hub, DEMO_TOKEN)
        assert "Max-Age=1;" in answer.headers["Set-Cookie"]
        cookie = cookie_of(answer)
        assert fetch(hub, f"/{PRIVATE}", headers=cookie).status == 200
        time.sleep(1.2)
        assert fetch(hub, f"/{PRIVATE}", headers=cookie).status == 404


@pytest.mark.parametrize(
    "cookie",
    [f"hubpub_token={DEMO_TOKEN}", f"hubpub_session={DEMO_TOKEN}", f"hubpub_session={'A' * 43}", "hubpub_session=../"],
)
def test_a_cookie_that_is_no_session_of_this_hub_is_nobody(hub: HubServer, cookie: str) -> None:
    cookie_of(log_in(hub, DEMO_TOKEN))  # a live session exists; guessing does not find it
    assert fetch(hub, f"/{PRIVATE}", headers={"Cookie": cookie}).status == 404


def test_guessing_tokens_at_the_login_gets_429(hub: HubServer) -> None:
    for attempt in range(10):
        assert log_in(hub, f"hf_guess_{attempt:020d}").status == 401
    refused = log_in(hub, "hf_guess_one_more_0000000")
    assert refused.status == 429 and "Too many failed logins" in refused.text
    assert 590 <= int(refused.headers["Retry-After"]) <= 600
    right = log_in(hub, DEMO_TOKEN)
    assert right.status == 429 and "Set-Cookie" not in right.headers, "the right token does not tell itself apart"
    # Another client address (127.0.0.2 is loopback too) is not held back by this one's failures.
    assert log_in(hub, DEMO_TOKEN, source="127.0.0.2").status == 303


def test_the_login_limit_lifts_after_its_window(demo_store: Path) -> None:
    limits = Limits(login_failures=2, login_window_seconds=1)
    with HubServer(demo_store, tokens=dict(TOKENS), limits=limits) as hub:
        assert [log_in(hub, f"hf_guess_{n:020d}").status for n in range(3)] == [401, 401, 429]
        time.sleep(1.1)
        assert log_in(hub, DEMO_TOKEN).status == 303


def test_the_session_and_failure_tables_have_a_fixed_size() -> None:
    now = [0.0]
    limiter = LoginLimiter(3, 600, capacity=100, clock=lambda: now[0])
    for number in range(1000):
        limiter.failed(f"10.0.{number // 256}.{number % 256}")
    assert len(limiter._by_client) == 100
    for _ in range(5):
        limiter.failed("2001:db8::1")
        limiter.failed("2001:db8::2")  # the same /64
    assert limiter.retry_after("2001:db8::ffff") == 600 and limiter.retry_after("2001:db8:0:1::1") == 0
    table = TokenTable.from_tokens(dict(TOKENS))
    sessions = Sessions(table, 3600, capacity=50, clock=lambda: now[0])
    opened = [sessions.open(DEMO_TOKEN) for _ in range(200)]
    assert len(sessions._by_id) == 50
    assert sessions.identity(opened[0]) is None and sessions.identity(opened[-1]) is not None
    now[0] = 3600.0
    assert sessions.identity(opened[-1]) is None
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", opened[-1])
