"""The embedded Hub's web pages over HTTP: the index by family, a model page, escaping, private repos, login."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from hubpub.hub import HubServer
from hubpub.hub.cards import is_safe_link, render_card
from tests.hub.demo_family import (
    BASE_MODEL,
    CARDS,
    DEMO_TOKEN,
    EVE_TOKEN,
    HOSTILE,
    PRIVATE,
    RICH,
    TOKENS,
    W4A16,
    W8A8,
)


@dataclass
class Page:
    status: int
    headers: http.client.HTTPMessage
    text: str


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, and the text inside each element by tag."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def hrefs(self) -> list[str]:
        return [str(attrs["href"]) for tag, attrs in self.tags if tag == "a" and attrs.get("href") is not None]


@pytest.fixture(scope="module")
def hub(demo_store: Path) -> Iterator[HubServer]:
    with HubServer(demo_store, tokens=TOKENS) as server:
        yield server


def fetch(
    hub: HubServer,
    path: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    source: str = "127.0.0.1",
) -> Page:
    """One request from the `source` address; a `Host` in `headers` replaces the one http.client would send."""
    split = urlsplit(hub.url)
    connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=10, source_address=(source, 0))
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return Page(response.status, response.headers, response.read().decode("utf-8", errors="replace"))
    finally:
        connection.close()


def log_in(hub: HubServer, token: str, *, next_page: str = "/", origin: str | None = None) -> Page:
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": origin or hub.url}
    body = urlencode({"token": token, "next": next_page}).encode()
    return fetch(hub, "/-/login", method="POST", headers=headers, body=body)


def test_the_index_groups_repos_by_family_and_lists_only_what_the_viewer_may_see(hub: HubServer) -> None:
    page = fetch(hub, "/")
    assert page.status == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    family = page.text.index("smollm2-135m-demo")
    assert family < page.text.index(f'href="/{W4A16}"') < page.text.index(f'href="/{W8A8}"')
    assert "v0.1.0" in page.text
    assert PRIVATE not in page.text
    # eve's repo has no manifest and no base model: it is grouped by its namespace.
    assert re.search(r'<span class="muted">namespace</span> eve</h2>', page.text)
    owner = fetch(hub, "/", headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert f'href="/{PRIVATE}"' in owner.text and "signed in as <strong>demo</strong>" in owner.text
    assert PRIVATE not in fetch(hub, "/", headers={"Authorization": f"Bearer {EVE_TOKEN}"}).text


def card_of(page: Page) -> str:
    return page.text[page.text.index('<article class="card markdown"') : page.text.index("</article>")]


def test_a_model_page_renders_the_card_the_metadata_files_commits_and_tags(hub: HubServer) -> None:
    page = fetch(hub, f"/{W4A16}")
    assert page.status == 200
    card = card_of(page)
    assert "<!-- hubpub:snippet transformers -->" in (CARDS / "golden" / "demo-W4A16.md").read_text(encoding="utf-8")
    assert "hubpub:snippet" not in page.text, "HTML comments are hidden, as on huggingface.co"
    golden = (CARDS / "golden" / "demo-W4A16.md").read_text(encoding="utf-8")
    assert card.count("<table>") == len(re.findall(r"^\|(?:-+\|)+$", golden, re.MULTILINE)) > 5
    assert "<th>Property</th>" in card and "style=" not in card
    assert '<pre><code class="language-python">from accelerate import infer_auto_device_map' in card
    assert "<h2>Evaluation</h2>" in card
    assert "base_model:" not in card, "the metadata block is not part of the rendered card"
    panel = page.text[page.text.index('<section id="evaluation">') :]
    panel = panel[: panel.index("</section>")]
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td class=\"align-right\">([^<]*)</td></tr>", panel)
    assert ("demo_capitals", "acc", "0.95") in rows and ("demo_wikitext", "word_perplexity", "62.66") in rows
    assert len(rows) == 5
    assert f'<a href="https://huggingface.co/{BASE_MODEL}">{BASE_MODEL}</a>' in page.text
    assert re.search(r"model\.safetensors</a></td><td class=\"align-right\">16\.4 kB</td>", page.text)
    assert "Release W4A16 0.1.0" in page.text and "initial commit" in page.text
    assert '<span class="chip tag">v0.1.0</span>' in page.text


def test_links_to_repos_on_this_hub_stay_on_it(hub: HubServer) -> None:
    hrefs = Elements(fetch(hub, f"/{W4A16}").text).hrefs()
    assert f"/{W8A8}" in hrefs
    assert f"https://huggingface.co/{W8A8}" not in hrefs
    assert f"https://huggingface.co/{BASE_MODEL}" in hrefs, "the base is not on this Hub: its link stays"
    assert f"/{W4A16}/resolve/main/model.safetensors" in hrefs
    downloaded = fetch(hub, f"/{W4A16}/resolve/main/model.safetensors")
    assert downloaded.status == 200


def test_the_pages_forbid_scripts_and_inline_styles(hub: HubServer) -> None:
    page = fetch(hub, f"/{W4A16}")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "style-src 'self'" in policy and "unsafe" not in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY"
    tags = Elements(page.text).tags
    assert not [tag for tag, _ in tags if tag in ("script", "iframe", "object", "embed")]
    assert not [attrs for _, attrs in tags if "style" in attrs or any(name.startswith("on") for name in attrs)]
    stylesheet = fetch(hub, "/-/pages.css")
    assert stylesheet.status == 200 and stylesheet.headers["Content-Type"] == "text/css; charset=utf-8"


def test_a_hostile_card_loses_its_scripts_and_links_nowhere_unsafe(hub: HubServer) -> None:
    page = fetch(hub, f"/{HOSTILE}")
    assert page.status == 200
    tags = Elements(page.text).tags
    assert not [tag for tag, _ in tags if tag == "script"]
    assert not [attrs for _, attrs in tags if any(name.startswith("on") for name in attrs)]
    links = [attrs.get("href") or attrs.get("src") or "" for _, attrs in tags if "href" in attrs or "src" in attrs]
    assert links and all(is_safe_link(link) for link in links), links
    assert all(not link.lower().startswith(("javascript", "data")) for link in links)
    card = card_of(page)
    assert "script tag" not in card and "cell&#39;)" not in card and "'cell')" not in card, "scripts go, text and all"
    assert f'<img src="/{HOSTILE}/resolve/main/x">' in card, "the image stays, without its handler"
    assert '<a rel="nofollow noopener noreferrer">a raw HTML link</a>' in card, "the raw link keeps no href"
    assert "[a javascript link](javascript:" in card, "a Markdown link to an unsafe URL stays text"
    assert "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;" in card, "code shows HTML as text"
    assert '<li class="chip">&lt;script&gt;alert(&#39;tag&#39;)&lt;/script&gt;</li>' in page.text
    assert "<li>javascript:alert(&#39;base&#39;)</li>" in page.text, "a base model that is no repo id is not a link"
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page.text


def test_a_private_repo_is_a_404_like_a_missing_one_until_its_owner_logs_in(hub: HubServer) -> None:
    hidden, missing = fetch(hub, f"/{PRIVATE}"), fetch(hub, "/demo/no-such-repo")
    assert hidden.status == missing.status == 404
    assert hidden.text.replace("unreleased-W4A16", "X") == missing.text.replace("no-such-repo", "X")
    assert fetch(hub, f"/{PRIVATE}", headers={"Authorization": f"Bearer {EVE_TOKEN}"}).status == 404
    assert fetch(hub, f"/{PRIVATE}/resolve/main/README.md").status == 404

    refused = log_in(hub, EVE_TOKEN + "x", next_page=f"/{PRIVATE}")
    assert refused.status == 401 and "Set-Cookie" not in refused.headers
    assert "This token is not valid on this Hub." in refused.text

    answer = log_in(hub, DEMO_TOKEN, next_page=f"/{PRIVATE}")
    assert answer.status == 303 and answer.headers["Location"] == f"/{PRIVATE}"
    cookie = answer.headers["Set-Cookie"]
    assert re.fullmatch(r"hubpub_session=[A-Za-z0-9_-]{43}; Path=/; Max-Age=43200; HttpOnly; SameSite=Strict", cookie)
    assert DEMO_TOKEN not in cookie, "the cookie holds a session id, never the token"
    with_cookie = {"Cookie": cookie.split(";")[0]}
    page = fetch(hub, f"/{PRIVATE}", headers=with_cookie)
    assert page.status == 200 and "A secret card." in page.text and '<span class="badge">private</span>' in page.text
    assert fetch(hub, f"/{PRIVATE}/resolve/main/README.md", headers=with_cookie).status == 200

    logged_out = fetch(hub, "/-/logout", method="POST", headers={"Origin": hub.url, "Content-Length": "0"})
    assert logged_out.status == 303 and "Max-Age=0" in logged_out.headers["Set-Cookie"]


def test_the_login_form_refuses_other_sites_and_sends_nobody_elsewhere(hub: HubServer) -> None:
    assert log_in(hub, DEMO_TOKEN, origin="http://evil.example").status == 403
    cross_site = {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/x-www-form-urlencoded"}
    body = urlencode({"token": DEMO_TOKEN}).encode()
    assert fetch(hub, "/-/login", method="POST", headers=cross_site, body=body).status == 403
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        answer = log_in(hub, DEMO_TOKEN, next_page=target)
        assert answer.status == 303 and answer.headers["Location"] == "/"
    form = fetch(hub, "/-/login?next=%22%3E%3Cscript%3E")
    assert form.status == 200 and "<script" not in form.text and 'name="next" value="/"' in form.text


def test_an_unknown_token_shows_public_pages_and_says_so(hub: HubServer) -> None:
    page = fetch(hub, "/", headers={"Cookie": f"hubpub_session={'x' * 43}"})
    assert page.status == 200 and "not valid on this Hub" in page.text and W4A16 in page.text
    assert PRIVATE not in page.text


@pytest.mark.parametrize(
    ("path", "status"),
    [("/demo/..%2Fx", 400), ("/demo/%FF", 400), ("/demo/a--b", 400), ("/datasets/demo/none", 404)],
)
def test_a_malformed_or_unknown_repo_path_gets_an_html_refusal(hub: HubServer, path: str, status: int) -> None:
    page = fetch(hub, path)
    assert page.status == status
    assert page.headers["Content-Type"] == "text/html; charset=utf-8" and "Traceback" not in page.text


def test_api_routes_keep_answering_json(hub: HubServer) -> None:
    info = fetch(hub, f"/api/models/{W4A16}")
    assert info.status == 200 and info.headers["Content-Type"] == "application/json"
    unknown = fetch(hub, "/-/nothing")
    assert unknown.status == 404 and unknown.headers["Content-Type"] == "application/json"


def test_card_links_keep_only_safe_schemes_and_relative_files_point_at_the_repo() -> None:
    text = "[a](recipe.yaml) [b](https://example.com) [c](vbscript:x) [d](FILE:///etc/passwd) [e](#top)"
    html = render_card(text, known=set(), file_link=lambda path: f"/ns/name/resolve/main/{path}").html
    assert '<a href="/ns/name/resolve/main/recipe.yaml">a</a>' in html
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">b</a>' in html
    assert "[c](vbscript:x)" in html and "[d](FILE:///etc/passwd)" in html
    assert '<a href="#top">e</a>' in html
    raw = '<a href="//evil.example/x">f</a> <a>g</a> <a title="t" href="/\\evil.example">h</a> <a href="/x/y">i</a>'
    html = render_card(raw, known=set(), file_link=lambda path: path).html
    assert '<a href="//evil.example/x" rel="nofollow noopener noreferrer">f</a>' in html
    assert '<a rel="nofollow noopener noreferrer">g</a>' in html
    assert '<a title="t" href="/\\evil.example" rel="nofollow noopener noreferrer">h</a>' in html
    assert '<a href="/x/y">i</a>' in html, "only links within this Hub go without rel"


def test_the_html_model_cards_use_renders(hub: HubServer) -> None:
    card = card_of(fetch(hub, f"/{RICH}"))
    assert "hubpub:snippet" not in card and "<!--" not in card
    assert (
        f'<div align="center"><img src="/{RICH}/resolve/main/assets/logo.png" alt="the logo" width="120"></div>' in card
    )
    assert "<details><summary>Click for <b>details</b></summary>" in card
    assert "<p>Hidden <strong>Markdown</strong> inside: press <kbd>Ctrl</kbd>+<kbd>C</kbd>;" in card
    assert "E = mc<sup>2</sup>, H<sub>2</sub>O.</p>\n</details>" in card
    assert "<tr><th>metric</th><th>value</th></tr>\n<tr><td>acc<br>5-shot</td>" in card
    assert f'<a href="/{HOSTILE}">a sibling</a>' in card, "a repo here links here"
    assert '<p align="center">centered <em>text</em>' in card


def test_hostile_html_inside_the_allowed_tags_is_removed(hub: HubServer) -> None:
    card = card_of(fetch(hub, f"/{RICH}"))
    tags = Elements(card).tags
    allowed = {"a", "article", "b", "br", "code", "details", "div", "em", "h1", "h2", "img", "kbd", "p", "span"}
    allowed |= {"strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "tr"}
    assert {tag for tag, _ in tags} <= allowed, "no script, style, svg, iframe, form, input, base, meta or object"
    assert {name for _, attrs in tags for name in attrs} <= {
        "align",
        "alt",
        "class",
        "href",
        "id",
        "open",
        "rel",
        "src",
        "width",
    }
    for _, attrs in tags:
        for url in (attrs.get("href"), attrs.get("src")):
            assert url is None or url.startswith(("/", "https://")), url
    for payload in ("script in details", "ontoggle", "iframe", "display: none", "evil.example", "data:image"):
        assert payload not in card
    assert '<details open="">\n<summary>Open me</summary>' in card and f'<img src="/{RICH}/resolve/main/x">' in card
    assert "<div>a div that would cover the page</div>" in card, "the div stays, without style or handler"
    assert '<a rel="nofollow noopener noreferrer">a span link</a>' in card
    assert '<a rel="nofollow noopener noreferrer">a table link</a>' in card, "an entity-encoded javascript: URL goes"
    assert "<sup>sup text</sup>" in card and "Log in again" in card


def test_a_link_to_a_private_repo_leads_here_only_for_whom_may_see_it(hub: HubServer) -> None:
    """Cards are cached between requests: what one viewer was shown must not reach the next."""
    outside, inside = f"https://huggingface.co/{PRIVATE}", f"/{PRIVATE}"
    owner = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    for headers, expected in (({}, outside), (owner, inside), ({}, outside), (owner, inside)):
        hrefs = Elements(card_of(fetch(hub, f"/{RICH}", headers=headers))).hrefs()
        assert expected in hrefs and (outside if expected == inside else inside) not in hrefs
