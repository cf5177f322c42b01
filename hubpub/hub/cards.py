"""A model card as the Hub shows it: the Markdown body rendered to HTML, and the facts of its metadata block.

A card is untrusted text. It is rendered by markdown-it-py (CommonMark plus tables) with HTML in the
source off, so `<script>` and every other tag arrive as text; links and images keep only http, https
and mailto URLs or paths, and inline styles (table alignment) become classes, so the pages' Content
Security Policy can forbid scripts and inline styles alike. Links to repos that the viewer can see
on this Hub lead to their local pages instead of huggingface.co.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

from hubpub.hub.store import FRONT_MATTER, front_matter

MAX_CARD_CHARACTERS = 1 << 20
"""Longer cards are not rendered (the page says so): markdown-it is quick, but not on any input."""
_MAX_ITEMS = 200
_MAX_TEXT = 300
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_HUB_LINK = re.compile(
    r"https?://(?:www\.)?huggingface\.co/((?:datasets/|spaces/)?[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)/?(#[^\s]*)?"
)
_ALIGNMENT = {"text-align:left": "align-left", "text-align:center": "align-center", "text-align:right": "align-right"}
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


@dataclass(frozen=True)
class EvalResult:
    """One metric of the card's `model-index`."""

    task: str
    dataset: str
    metric: str
    value: str


@dataclass(frozen=True)
class CardFacts:
    """What the side panel shows, read from the card's metadata; anything malformed is left out."""

    base_models: tuple[str, ...] = ()
    license: str | None = None
    tags: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    library_name: str | None = None
    results: tuple[EvalResult, ...] = ()


@dataclass(frozen=True)
class RenderedCard:
    html: str
    facts: CardFacts
    too_long: bool = False


def is_safe_link(url: str) -> bool:
    """A URL a card may link to: http, https or mailto, or a path with no scheme at all."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return False
    return scheme in _SAFE_SCHEMES or not scheme


def local_repo_link(url: str, known: Collection[str]) -> str | None:
    """The local page of a huggingface.co repo link when that repo is in `known` (ids with their type prefix)."""
    match = _HUB_LINK.fullmatch(url.strip())
    if match is None or match.group(1) not in known:
        return None
    return f"/{match.group(1)}{match.group(2) or ''}"


def is_repo_id(text: str) -> bool:
    """Whether metadata (a base model) names a repo, `namespace/name` or a legacy bare `name`."""
    return _REPO_ID.fullmatch(text) is not None


def hub_page(repo_id: str, known: Collection[str]) -> str | None:
    """Where a repo id from metadata leads: its local page, huggingface.co, or nowhere when it is no repo id."""
    if repo_id in known:
        return f"/{repo_id}"
    return f"https://huggingface.co/{repo_id}" if is_repo_id(repo_id) else None


def card_body(text: str) -> str:
    """The card without its YAML metadata block, as the Hub renders it."""
    match = FRONT_MATTER.match(text)
    return text[match.end() :] if match else text


def render_card(text: str, *, known: Collection[str], file_link: Callable[[str], str]) -> RenderedCard:
    """The card's body as HTML, and the facts of its metadata.

    `known` holds the ids (with `datasets/` or `spaces/` before non-models) of the repos whose local
    pages the viewer can open; `file_link` turns a relative link (`recipe.yaml`) into a URL.
    """
    facts = card_facts(front_matter(text))
    if len(text) > MAX_CARD_CHARACTERS:
        return RenderedCard("", facts, too_long=True)
    parser = _parser()
    tokens = parser.parse(card_body(text))
    for token in _walk(tokens):
        _rewrite(token, known, file_link)
    return RenderedCard(parser.renderer.render(tokens, parser.options, {}), facts)


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    parser.enable(["table", "strikethrough"])
    parser.validateLink = is_safe_link  # type: ignore[method-assign]
    return parser


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _rewrite(token: Token, known: Collection[str], file_link: Callable[[str], str]) -> None:
    if token.type in ("th_open", "td_open"):
        style = str(token.attrGet("style") or "")
        token.attrs.pop("style", None)
        if style in _ALIGNMENT:
            token.attrSet("class", _ALIGNMENT[style])
        return
    attribute = {"link_open": "href", "image": "src"}.get(token.type)
    if attribute is None:
        return
    url = str(token.attrGet(attribute) or "")
    local = local_repo_link(url, known)
    if local is not None:
        token.attrSet(attribute, local)
    elif _is_relative_file(url):
        token.attrSet(attribute, file_link(url))
    elif token.type == "link_open" and not url.startswith("#"):
        token.attrSet("rel", "nofollow noopener noreferrer")


def _is_relative_file(url: str) -> bool:
    split = urlsplit(url)
    return bool(split.path) and not (split.scheme or split.netloc or url.startswith(("/", "#", "?")))


def card_facts(metadata: dict[str, Any] | None) -> CardFacts:
    """The side panel's facts from a card's metadata block, which may hold anything."""
    if not metadata:
        return CardFacts()
    return CardFacts(
        base_models=_texts(metadata.get("base_model")),
        license=_text(metadata.get("license")),
        tags=_texts(metadata.get("tags")),
        pipeline_tag=_text(metadata.get("pipeline_tag")),
        library_name=_text(metadata.get("library_name")),
        results=tuple(_results(metadata.get("model-index"))),
    )


def _text(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _texts(value: object) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(text for item in values[:_MAX_ITEMS] if (text := _text(item)) is not None)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _results(model_index: object) -> Iterator[EvalResult]:
    count = 0
    for model in model_index if isinstance(model_index, list) else []:
        for result in _mapping(model).get("results") or []:
            result = _mapping(result)
            task, dataset = _mapping(result.get("task")), _mapping(result.get("dataset"))
            task_name = _text(task.get("name")) or _text(task.get("type")) or ""
            dataset_name = _text(dataset.get("name")) or _text(dataset.get("type")) or ""
            metrics = result.get("metrics")
            for metric in metrics if isinstance(metrics, list) else []:
                metric = _mapping(metric)
                value = metric.get("value")
                shown = format(value, ".4g") if isinstance(value, float) else _text(value)
                name = _text(metric.get("name")) or _text(metric.get("type"))
                if shown is None or name is None:
                    continue
                yield EvalResult(task_name, dataset_name, name, shown)
                count += 1
                if count >= _MAX_ITEMS:
                    return


def quoted_path(path: str) -> str:
    """A repo file's path as a URL path (each segment percent-encoded)."""
    return "/".join(quote(part, safe="") for part in path.split("/"))
