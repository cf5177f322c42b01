"""The list endpoints (`GET /api/models`, `/api/datasets`, `/api/spaces`): their query, checked strictly; the
tags a repo's card gives it; which repos a query selects, in which order; and the cursor of the next page.

The query takes what huggingface_hub 1.33's `list_models`/`list_datasets`/`list_spaces` send for the facts
this Hub has: `author`, `search` and `filter` (repeatable), `pipeline_tag`, `gated`, `sort` and
`direction`, `limit`, `full`, `cardData` and `expand`. Anything else (apps, inference providers,
parameter counts, ...) is a 400 that names what is supported, never an answer that ignored it.

A page holds `limit` repos, at most `Limits.list_page`; a fuller answer ends with a `Link: <...>; rel="next"`
whose `cursor` is the sort value and id of the page's last repo. The next page starts strictly after it,
so repos created or deleted between pages neither repeat nor shift the rest.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hubpub.hub import validation
from hubpub.hub.errors import HubError

MAX_LIMIT = 1_000_000
MAX_VALUE_LENGTH = 256
MAX_CARD_TAGS = 200
SORT_KEYS: dict[str, type] = {
    "id": str,
    "createdAt": str,
    "lastModified": str,
    "downloads": int,
    "likes": int,
    "trendingScore": int,
}
_SINGLE = ("author", "limit", "sort", "direction", "full", "cardData", "gated", "pipeline_tag", "cursor")
_REPEATABLE = {"search": 8, "filter": 32, "expand": 32}
_COMMON_PROPERTIES = (
    "author",
    "cardData",
    "createdAt",
    "disabled",
    "gated",
    "lastModified",
    "likes",
    "private",
    "sha",
    "siblings",
    "tags",
    "trendingScore",
)
PROPERTIES = {
    "model": (*_COMMON_PROPERTIES, "downloads", "library_name", "pipeline_tag"),
    "dataset": (*_COMMON_PROPERTIES, "downloads"),
    "space": _COMMON_PROPERTIES,
}
"""What `expand` may ask for: the properties this Hub knows of each kind of repo."""
_DEFAULT_HIDDEN = ("cardData", "siblings")
_DATASET_TAG_KEYS = (
    "task_categories",
    "task_ids",
    "language",
    "multilinguality",
    "size_categories",
    "language_creators",
    "source_datasets",
)
_WHOLE_NUMBER = re.compile(r"[0-9]{1,7}")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


@dataclass(frozen=True)
class ListQuery:
    kind: str
    author: str | None
    search: tuple[str, ...]
    filters: tuple[str, ...]
    pipeline_tag: str | None
    gated: bool | None
    sort: str
    descending: bool
    page_size: int
    full: bool
    card_data: bool
    expand: tuple[str, ...] | None
    after: tuple[Any, str] | None
    """The sort value and id of the previous page's last repo."""


def parse_query(kind: str, query: dict[str, list[str]], page_max: int) -> ListQuery:
    """The query of a list request; every doubt (unknown, repeated, malformed or out-of-range values) is a 400."""
    what = f"GET /api/{kind}s"
    for key, values in query.items():
        if key not in _SINGLE and key not in _REPEATABLE:
            supported = ", ".join(sorted((*_SINGLE, *_REPEATABLE)))
            raise HubError(400, f"{what} does not support the query parameter {validation.shown(key)}: use {supported}")
        most = _REPEATABLE.get(key, 1)
        if len(values) > most:
            raise HubError(400, f"{what}: {key} is given {len(values)} times; at most {most}")
        for value in values:
            if len(value) > MAX_VALUE_LENGTH:
                raise HubError(400, f"{what}: a {key} value is longer than {MAX_VALUE_LENGTH} characters")

    def single(key: str) -> str | None:
        return query[key][0] if key in query else None

    author = single("author")
    if author is not None:
        author = validation.repo_part(author, "author")
    sort = single("sort")
    if sort is not None and sort not in SORT_KEYS:
        raise HubError(400, f"Invalid sort {validation.shown(sort)}: use one of {', '.join(SORT_KEYS)}")
    direction = single("direction")
    if direction not in (None, "-1", "1"):
        raise HubError(400, f"Invalid direction {validation.shown(direction)}: use -1 (descending) or 1 (ascending)")
    # As on huggingface.co, a sort key alone sorts the largest (or newest) first.
    descending = direction == "-1" or (direction is None and sort is not None)
    limit = single("limit")
    if limit is not None and not _WHOLE_NUMBER.fullmatch(limit):
        raise HubError(400, f"Invalid limit {validation.shown(limit)}: a whole number from 0 to {MAX_LIMIT}")
    expand = tuple(query["expand"]) if "expand" in query else None
    full, card_data = _boolean(single("full"), "full"), _boolean(single("cardData"), "cardData")
    if expand is not None:
        if full or card_data:
            raise HubError(400, f"{what}: expand cannot be combined with full or cardData")
        unknown = [name for name in expand if name not in PROPERTIES[kind]]
        if unknown:
            known = ", ".join(PROPERTIES[kind])
            raise HubError(400, f"{what}: cannot expand {validation.shown(unknown[0])}; this Hub knows {known}")
    if kind != "model" and "pipeline_tag" in query:
        raise HubError(400, f"{what}: pipeline_tag filters models only")
    return ListQuery(
        kind=kind,
        author=author,
        search=tuple(query.get("search", ())),
        filters=tuple(query.get("filter", ())),
        pipeline_tag=single("pipeline_tag"),
        gated=_boolean(single("gated"), "gated"),
        sort=sort or "id",
        descending=descending,
        page_size=page_max if limit is None else min(int(limit), page_max),
        full=bool(full),
        card_data=bool(card_data),
        expand=expand,
        after=_parse_cursor(single("cursor"), sort or "id", descending),
    )


def _boolean(value: str | None, key: str) -> bool | None:
    if value is None:
        return None
    if value.lower() not in _BOOLEANS:
        raise HubError(400, f"Invalid {key} {validation.shown(value)}: use true or false")
    return _BOOLEANS[value.lower()]


def card_tags(kind: str, card: dict[str, Any] | None) -> list[str]:
    """The tags a repo's card gives it, as huggingface.co derives them from the card's metadata."""
    if not card:
        return []
    tags: list[str] = []

    def add(value: object, prefix: str = "") -> None:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.strip() and len(tags) < MAX_CARD_TAGS:
                tag = prefix + item.strip()
                if tag not in tags:
                    tags.append(tag)

    add(card.get("tags"))
    if kind == "model":
        add(card.get("library_name"))
        add(card.get("pipeline_tag"))
        add(card.get("language"))
        add(card.get("datasets"), "dataset:")
        add(card.get("base_model"), "base_model:")
    elif kind == "dataset":
        for key in _DATASET_TAG_KEYS:
            add(card.get(key), f"{key}:")
    add(card.get("license"), "license:")
    return tags


def selected(summary: dict[str, Any], query: ListQuery) -> bool:
    """Whether a repo's summary (the one repo info answers with) matches the query's filters."""
    repo_id = str(summary["id"]).lower()
    if query.author is not None and str(summary["author"]).lower() != query.author.lower():
        return False
    if not all(term.lower() in repo_id for term in query.search):
        return False
    if not all(tag in summary["tags"] for tag in query.filters):
        return False
    if query.pipeline_tag is not None and summary.get("pipeline_tag") != query.pipeline_tag:
        return False
    return query.gated is None or bool(summary["gated"]) == query.gated


def page(summaries: list[dict[str, Any]], query: ListQuery) -> tuple[list[dict[str, Any]], str | None]:
    """The page the query asks for, and the cursor of the next one (None on the last page)."""

    def position(summary: dict[str, Any]) -> tuple[Any, str]:
        return summary[query.sort], summary["id"]

    ordered = sorted(summaries, key=position, reverse=query.descending)
    if query.after is not None:
        after = query.after
        ordered = [item for item in ordered if (position(item) < after if query.descending else position(item) > after)]
    shown, rest = ordered[: query.page_size], ordered[query.page_size :]
    if not rest or not shown:
        return shown, None
    last = position(shown[-1])
    payload = json.dumps([query.sort, -1 if query.descending else 1, *last], separators=(",", ":"))
    return shown, base64.urlsafe_b64encode(payload.encode()).decode()


def next_link(query: dict[str, list[str]], cursor: str) -> str:
    """The query string of the next page: the same query with the new cursor."""
    pairs = [(key, value) for key, values in query.items() if key != "cursor" for value in values]
    return urlencode([*pairs, ("cursor", cursor)])


def _parse_cursor(raw: str | None, sort: str, descending: bool) -> tuple[Any, str] | None:
    if raw is None:
        return None
    invalid = HubError(400, "Invalid cursor: use the next link of the previous page as it came")
    try:
        data = json.loads(base64.b64decode(raw, altchars=b"-_", validate=True).decode("utf-8"))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not (isinstance(data, list) and len(data) == 4):
        raise invalid
    cursor_sort, direction, value, repo_id = data
    if cursor_sort != sort or direction != (-1 if descending else 1):
        raise HubError(400, "Invalid cursor: it belongs to a listing in another order")
    expected = SORT_KEYS[sort]
    if isinstance(value, bool) or not isinstance(value, expected) or not isinstance(repo_id, str):
        raise invalid
    if len(repo_id) > 2 * validation.REPO_PART_MAX + 1 or (isinstance(value, str) and len(value) > 200):
        raise invalid
    return value, repo_id


def shaped(summary: dict[str, Any], query: ListQuery) -> dict[str, Any]:
    """A repo as a list answers with it: `expand` names every property, otherwise `full`/`cardData` add to the rest."""
    if query.expand is not None:
        return {"id": summary["id"], **{key: summary[key] for key in query.expand if key in summary}}
    hidden = set(_DEFAULT_HIDDEN) - ({"cardData", "siblings"} if query.full else set())
    if query.card_data:
        hidden.discard("cardData")
    return {key: value for key, value in summary.items() if key not in hidden}
