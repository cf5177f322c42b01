"""A model card as the Hub shows it: the Markdown body rendered to HTML, and the facts of its metadata block.

A card is untrusted text. It is rendered as huggingface.co renders it: markdown-it-py (CommonMark plus
tables), HTML in the source included, then the whole result sanitized by nh3 (ammonia) against an
allowlist of the tags model cards use (`details`, `img`, tables, `sup`, `kbd`, ...), a few attributes
and the http, https and mailto URL schemes or paths. Comments, scripts, styles, forms, frames, event
handlers and `style` attributes are removed, so the pages' Content Security Policy can forbid scripts and
inline styles alike. Links to repos that the viewer can see on this Hub lead to their local pages
instead of huggingface.co; relative links and images lead to the repo's files.

Rendering costs in proportion to the card's markup, so cards over MAX_CARD_BYTES, MAX_CARD_MARKUP or
MAX_CARD_HTML_TAGS are not rendered (the page says so), and CardCache keeps what was rendered and parsed
by the README's content id: a card costs one render per commit that changes it, not one per request.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from hubpub.hub.store import FRONT_MATTER, MAX_CARD_METADATA, front_matter

MAX_CARD_BYTES = 512 << 10
"""Longer cards are not rendered (the page says so)."""
_TOO_LONG = f"This card is too long to render here (over {MAX_CARD_BYTES >> 10} KiB)."
MAX_CARD_MARKUP = 100_000
"""Cards with more Markdown markup characters are not rendered. markdown-it-py spends up to ~20 µs on each
(an unclosed `[` runs every inline rule on the text after it, up to MAX_NESTING levels deep), so this
bounds a render to about 2 s (measured on the worst patterns found); an everyday card of MAX_CARD_BYTES
holds about half as many."""
MAX_CARD_HTML_TAGS = 10_000
"""Cards with more HTML tags in their source are not rendered: html5ever (under nh3) takes time quadratic in
the depth of open elements (10,000 nested `<div>` cost 0.15 s, 100,000 cost 30 s)."""
MAX_NESTING = 20
"""markdown-it's limit on nested blocks and inline tokens; deeper content is dropped."""
READ_BYTES = max(MAX_CARD_BYTES, 4 * MAX_CARD_METADATA + 16)
"""How much of a README is read: all of a card that can be rendered, and all of a metadata block that can be parsed."""
_MARKUP = re.compile(r"[\n!#$%&*+\-:<=>@\[\\\]^_`{}~]")
"""markdown-it's inline terminators: every rule runs on each of them, and on nothing else."""
_HTML_TAG = re.compile(r"<[A-Za-z/!?]")
_MAX_ITEMS = 200
_MAX_TEXT = 300
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_HUB_LINK = re.compile(
    r"https?://(?:www\.)?huggingface\.co/((?:datasets/|spaces/)?[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)/?(#[^\s]*)?"
)
_HUB_LINK_IN_TEXT = re.compile(r"huggingface\.co/((?:datasets/|spaces/)?[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)")
_ALIGNMENT = {"text-align:left": "align-left", "text-align:center": "align-center", "text-align:right": "align-right"}
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
_ALIGNED = {"align"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "img": {"src", "alt", "title", "width", "height", "align"},
    "details": {"open"},
    "ol": {"start"},
    "code": {"class"},
    "th": {"class", "colspan", "rowspan", "align"},
    "td": {"class", "colspan", "rowspan", "align"},
    **{tag: _ALIGNED for tag in ("p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr")},
}
_ALLOWED_TAGS = {
    *_ALLOWED_ATTRIBUTES,
    *("b", "blockquote", "br", "caption", "center", "dd", "del", "dl", "dt", "em", "figcaption", "figure", "hr"),
    *("i", "ins", "kbd", "li", "mark", "pre", "s", "samp", "small", "span", "strike", "strong", "sub", "summary"),
    *("sup", "tbody", "tfoot", "thead", "u", "ul", "var"),
}
_REMOVED_WITH_CONTENT = {"script", "style", "template", "iframe", "noscript", "textarea", "title", "select"}
_CLASSES = {
    "code": re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}"),
    "th": re.compile(r"align-(?:left|center|right)"),
    "td": re.compile(r"align-(?:left|center|right)"),
}


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
    unrendered: str | None = None
    """Why the body was not rendered (too long, too much markup or HTML); None when it was."""


@dataclass(frozen=True)
class Readme:
    """A repo's README.md as the pages and the API meet it.

    `key` names its content (the git blob id in the store), `size` is in bytes, and `read` gives its text
    (the first READ_BYTES): it is called only when a CardCache does not hold what the card gives already.
    """

    key: str
    size: int
    read: Callable[[], str]


@dataclass(frozen=True)
class CardInfo:
    """What a card gives, whoever views it."""

    metadata: dict[str, Any] | None
    """The parsed metadata block, shared by every request: read it, never change it."""
    facts: CardFacts
    links: frozenset[str]
    """The huggingface.co repo ids the card's text mentions: the only ones that may become local links."""


def read_card(path: Path) -> str:
    """A README's text as far as the pages and the API use it (READ_BYTES)."""
    with path.open("rb") as handle:
        return handle.read(READ_BYTES).decode("utf-8", errors="replace")


def staged_readme(path: Path) -> Readme | None:
    """A README.md outside the store (a staged release), named by the hash of what is read of it."""
    if not path.is_file():
        return None
    with path.open("rb") as handle:
        content = handle.read(READ_BYTES)
        size = max(len(content), os.fstat(handle.fileno()).st_size)
    text = content.decode("utf-8", errors="replace")
    return Readme(f"sha256:{hashlib.sha256(content).hexdigest()}", size, lambda: text)


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
    html, unrendered = card_html(text, known=known, file_link=file_link)
    return RenderedCard(html, card_facts(front_matter(text)), unrendered)


def card_html(text: str, *, known: Collection[str], file_link: Callable[[str], str]) -> tuple[str, str | None]:
    """The card's body as sanitized HTML, or no HTML and the reason it was not rendered."""
    if len(text.encode("utf-8", errors="replace")) > MAX_CARD_BYTES:
        return "", _TOO_LONG
    body = card_body(text)
    if len(_MARKUP.findall(body)) > MAX_CARD_MARKUP:
        return (
            "",
            f"This card has too much markup to render here (over {MAX_CARD_MARKUP:,} Markdown markup characters).",
        )
    parser = _parser()
    tokens = parser.parse(body)
    raw_tags = sum(len(_HTML_TAG.findall(token.content)) for token in _walk(tokens) if token.type.startswith("html_"))
    if raw_tags > MAX_CARD_HTML_TAGS:
        return "", f"This card has too many HTML tags to render here (over {MAX_CARD_HTML_TAGS:,})."
    for token in _walk(tokens):
        if token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", ""))
            if style in _ALIGNMENT:
                token.attrSet("class", _ALIGNMENT[style])
    return _sanitizer(known, file_link).clean(parser.renderer.render(tokens, parser.options, {})), None


def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False, "maxNesting": MAX_NESTING})
    parser.enable(["table", "strikethrough"])
    parser.validateLink = is_safe_link  # type: ignore[method-assign]
    return parser


def _sanitizer(known: Collection[str], file_link: Callable[[str], str]) -> nh3.Cleaner:
    last_link_stays_here = False

    def attribute(tag: str, name: str, value: str) -> str | None:
        nonlocal last_link_stays_here
        if name == "class":
            allowed = _CLASSES.get(tag)
            return value if allowed is not None and allowed.fullmatch(value) else None
        if name == "rel":
            # ammonia adds `rel` to each link after its other attributes: links within this Hub go without it.
            stays_here, last_link_stays_here = last_link_stays_here, False
            return None if stays_here else value
        if name in ("href", "src"):
            value = local_repo_link(value, known) or (file_link(value) if _is_relative_file(value) else value)
            if tag == "a":
                last_link_stays_here = value.startswith(("/", "#")) and not value.startswith(("//", "/\\"))
        return value

    return nh3.Cleaner(
        tags=_ALLOWED_TAGS,
        clean_content_tags=_REMOVED_WITH_CONTENT,
        attributes=_ALLOWED_ATTRIBUTES,
        attribute_filter=attribute,
        strip_comments=True,
        link_rel="nofollow noopener noreferrer",
        url_schemes=set(_SAFE_SCHEMES),
    )


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def _is_relative_file(url: str) -> bool:
    try:
        split = urlsplit(url)
    except ValueError:
        return False
    return bool(split.path) and not (split.scheme or split.netloc or url.startswith(("/", "#", "?")))


_Value = TypeVar("_Value")


class CardCache:
    """Rendered cards and parsed metadata, by the README's content id, so that a card costs one parse and one
    render per commit that changes it (and per set of its links the viewer can open), not one per request.

    At most `max_bytes` are held (as `sys.getsizeof` counts them), the least recently used dropped first;
    a value over a quarter of that is computed and not kept. Requests that miss the same key at once wait
    for one computation instead of each repeating it. `parses` and `renders` count the computations.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.parses = 0
        self.renders = 0
        self.held = 0
        self._entries: OrderedDict[tuple[str, ...], tuple[object, int]] = OrderedDict()
        self._computing: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def info(self, readme: Readme) -> CardInfo:
        """The card's metadata, facts and links."""
        return self._get(("info", readme.key), lambda: self._info(readme.read()), _info_weight)

    def rendered(
        self, readme: Readme, *, known: Collection[str], page: str, file_link: Callable[[str], str]
    ) -> RenderedCard:
        """The card as the page `page` shows it to a viewer who can open the repos in `known`; `file_link`
        must depend on `page` alone."""
        read = functools.cache(readme.read)
        info = self._get(("info", readme.key), lambda: self._info(read()), _info_weight)
        if readme.size > MAX_CARD_BYTES:
            return RenderedCard("", info.facts, _TOO_LONG)
        linked = sorted(repo_id for repo_id in info.links if repo_id in known)
        html, unrendered = self._get(
            ("html", readme.key, page, *linked),
            lambda: self._html(read(), frozenset(linked), file_link),
            lambda value: sys.getsizeof(value[0]),
        )
        return RenderedCard(html, info.facts, unrendered)

    def _info(self, text: str) -> CardInfo:
        with self._lock:
            self.parses += 1
        metadata = front_matter(text)
        links = frozenset(match.group(1) for match in _HUB_LINK_IN_TEXT.finditer(card_body(text)))
        return CardInfo(metadata, card_facts(metadata), links)

    def _html(self, text: str, linked: frozenset[str], file_link: Callable[[str], str]) -> tuple[str, str | None]:
        with self._lock:
            self.renders += 1
        return card_html(text, known=linked, file_link=file_link)

    def _get(self, key: tuple[str, ...], compute: Callable[[], _Value], weigh: Callable[[_Value], int]) -> _Value:
        with self._lock:
            found = self._found(key)
            if found is not None:
                return found  # type: ignore[return-value]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                found = self._found(key)
                if found is not None:
                    return found  # type: ignore[return-value]
            try:
                value = compute()
                weight = weigh(value)
            except BaseException:
                with self._lock:
                    self._computing.pop(key, None)
                raise
            with self._lock:
                self._keep(key, value, weight)
                self._computing.pop(key, None)
            return value

    def _found(self, key: tuple[str, ...]) -> object | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def _keep(self, key: tuple[str, ...], value: object, weight: int) -> None:
        if weight > self.max_bytes // 4 or key in self._entries:
            return
        self._entries[key] = (value, weight)
        self.held += weight
        while self.held > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.held -= dropped


def _info_weight(info: CardInfo) -> int:
    return _weight(info.metadata) + sum(sys.getsizeof(link) for link in info.links) + 1024


def _weight(value: object) -> int:
    """About how many bytes a parsed metadata block holds (shared values counted each time they appear)."""
    total = 0
    pending = [value]
    while pending:
        current = pending.pop()
        total += sys.getsizeof(current)
        if isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return total


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
