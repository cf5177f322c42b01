"""What a card costs the embedded Hub: parsed and rendered once per README a commit brings, whoever asks and
however often, and not rendered at all past the limits on size, markup and HTML.

Before: every page, index and list request parsed every card's metadata and rendered its Markdown again (a
1 MiB metadata block cost about 1.1 s per repo per request, a 1 MiB card of `[` 12 s per page view), and
metadata nested 990 deep was parsed, then repo info and the lists dropped the connection without an answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from hubpub.hub import cards
from hubpub.hub.cards import MAX_CARD_BYTES, MAX_CARD_HTML_TAGS, MAX_CARD_MARKUP, CardCache, Readme
from hubpub.hub.store import MAX_CARD_DEPTH, MAX_CARD_METADATA
from tests.hub.harness import ALICE, BOB, Hub, Reply, add_file, commit_body, exchange, json_request, request

PAGE = "/alice/model"


def get(hub: Hub, target: str, token: str | None = None) -> Reply:
    return exchange(hub.url, request("GET", target, token=token))


def publish(hub: Hub, card: str, repo_id: str = "alice/model") -> None:
    api = hub.api()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=repo_id)


def publish_raw(hub: Hub, card: str, repo_id: str) -> None:
    """A commit by hand: huggingface_hub would stop at validate-yaml, but another client need not."""
    hub.api().create_repo(repo_id, exist_ok=True)
    body = commit_body(add_file("README.md", card.encode()))
    assert exchange(hub.url, request("POST", f"/api/models/{repo_id}/commit/main", body, token=ALICE)).status == 200


def card_html(reply: Reply) -> str:
    text = reply.body.decode()
    return text[text.index('<article class="card markdown"') : text.index("</article>")]


def counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Counts the calls of a function of hubpub.hub.cards (the markdown parser's or the sanitizer's maker)."""
    calls: list[int] = []
    original: Callable[..., Any] = getattr(cards, name)

    def wrapper(*args: Any) -> Any:
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(cards, name, wrapper)
    return calls


def test_a_card_is_parsed_and_rendered_once_per_commit_not_once_per_request(hub: Hub) -> None:
    cache = hub.server.cards
    publish(hub, "---\nlicense: mit\ntags: [first]\n---\n# The first card\n")

    def ask_everything(expected: str) -> None:
        for token in (None, ALICE, BOB):
            assert f"<h1>The {expected} card</h1>" in card_html(get(hub, PAGE, token))
            assert b'href="/alice/model"' in get(hub, "/", token).body
            listed = get(hub, "/api/models?cardData=true", token).json()
            assert isinstance(listed, list) and listed[0]["cardData"]["tags"] == [expected]
            info = get(hub, "/api/models/alice/model", token).json()
            assert isinstance(info, dict) and f"{expected}" in info["tags"]

    ask_everything("first")
    ask_everything("first")
    assert (cache.parses, cache.renders) == (1, 1)

    publish(hub, "---\nlicense: mit\ntags: [second]\n---\n# The second card\n")
    ask_everything("second")
    assert "first" not in card_html(get(hub, PAGE)), "a new commit's card shows at once"
    assert (cache.parses, cache.renders) == (2, 2)

    hub.api().upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/model")
    ask_everything("second")
    assert (cache.parses, cache.renders) == (2, 2), "a commit that leaves README.md as it was costs nothing"


def test_requests_that_come_at_once_for_a_new_card_wait_for_one_render(hub: Hub) -> None:
    publish(hub, "# Many brackets\n\n" + "[" * 30_000)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: get(hub, PAGE), range(8)))
    assert {reply.status for reply in replies} == {200}
    assert len({card_html(reply) for reply in replies}) == 1
    assert (hub.server.cards.parses, hub.server.cards.renders) == (1, 1)


def test_a_mebibyte_of_nested_brackets_is_answered_at_once_and_not_rendered(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsers = counted(monkeypatch, "_parser")
    publish(hub, "---\nlicense: mit\n---\n" + "[" * (1 << 20))
    started = time.monotonic()
    for _ in range(5):
        reply = get(hub, PAGE)
        assert reply.status == 200
        assert "This card is too long to render here (over 512 KiB)." in card_html(reply)
        assert "[[[" not in reply.body.decode() and len(reply.body) < 20_000
    assert get(hub, "/api/models/alice/model").json()["cardData"] == {"license": "mit"}  # type: ignore[index]
    assert time.monotonic() - started < 5, "five views of it took 60 s before"
    assert parsers == [], "markdown-it never saw it"
    assert hub.server.cards.parses == 1


def test_a_card_with_too_much_markup_or_html_is_not_rendered_and_says_why(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsers, sanitizers = counted(monkeypatch, "_parser"), counted(monkeypatch, "_sanitizer")
    brackets = "# Brackets\n\n" + "[" * (MAX_CARD_MARKUP + 1)
    divs = "# Divs\n\n" + "<div>" * (MAX_CARD_HTML_TAGS + 1)
    assert len(brackets.encode()) < MAX_CARD_BYTES and len(divs.encode()) < MAX_CARD_BYTES
    publish(hub, brackets)
    publish(hub, divs, "alice/divs")
    for _ in range(3):
        assert "This card has too much markup to render here (over 100,000 Markdown markup characters)." in (
            card_html(get(hub, PAGE))
        )
        assert "This card has too many HTML tags to render here (over 10,000)." in card_html(get(hub, "/alice/divs"))
    assert parsers == [1], "the markup is counted before markdown-it parses; the HTML tags after, once"
    assert sanitizers == [], "nh3 (whose time grows with the square of the nesting) never saw the divs"
    assert hub.server.cards.renders == 2


def test_metadata_nested_too_deep_or_too_long_is_ignored_and_every_answer_still_comes(hub: Hub) -> None:
    deep = "---\nlicense: mit\nnested: " + "[" * 990 + "]" * 990 + "\n---\n# Deep\n"
    long = "---\nlicense: mit\n" + "".join(f"k{i}: v{i}\n" for i in range(25_000)) + "---\n# Long\n"
    assert MAX_CARD_METADATA < len(long) < MAX_CARD_BYTES
    publish_raw(hub, deep, "alice/model")
    publish_raw(hub, long, "alice/long")
    for _ in range(3):
        for repo_id, title in (("alice/model", "Deep"), ("alice/long", "Long")):
            info = get(hub, f"/api/models/{repo_id}")
            assert info.status == 200 and info.json()["cardData"] is None  # type: ignore[index]
            assert f"<h1>{title}</h1>" in card_html(get(hub, f"/{repo_id}"))
        listed = get(hub, "/api/models?full=true&cardData=true")
        assert listed.status == 200 and [item["cardData"] for item in json.loads(listed.body)] == [None, None]
        assert get(hub, "/").status == 200
    assert hub.server.cards.parses == 2, "refused metadata is remembered too"
    refused = exchange(hub.url, json_request("POST", "/api/validate-yaml", {"content": deep}))
    assert refused.status == 400
    assert f"nested more than {MAX_CARD_DEPTH} levels deep" in refused.json()["errors"][0]["message"]  # type: ignore[index]


def test_the_cache_holds_no_more_than_its_bytes_and_drops_the_least_recently_used() -> None:
    cache = CardCache(max_bytes=400_000)
    readmes = [Readme(f"{i:040x}", 30_000, lambda i=i: f"# Card {i}\n\n" + "word " * 6_000) for i in range(20)]  # type: ignore[misc]
    for readme in readmes:
        assert (
            f"<h1>Card {readmes.index(readme)}</h1>" in cache.rendered(readme, known=(), page="a/b", file_link=str).html
        )
        assert cache.held <= cache.max_bytes
    assert cache.renders == 20
    cache.rendered(readmes[-1], known=(), page="a/b", file_link=str)
    assert cache.renders == 20, "the newest is still held"
    cache.rendered(readmes[0], known=(), page="a/b", file_link=str)
    assert cache.renders == 21, "the oldest was dropped"
    huge = Readme("f" * 40, 200_000, lambda: "word " * 40_000)
    for _ in range(2):
        cache.rendered(huge, known=(), page="a/b", file_link=str)
    assert cache.renders == 23 and cache.held <= cache.max_bytes, "a value over a quarter of the cache is not kept"
