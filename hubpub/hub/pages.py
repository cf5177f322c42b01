"""The embedded Hub's web pages: an index of repos grouped by family, and a page per repo, as on huggingface.co.

Paths are the Hub's own where they exist (`/`, `/{namespace}/{name}`, `/datasets/...`, `/spaces/...`);
the pages' own endpoints live under `/-/`, which no repo id can start with. Pages are rendered on
the server by Jinja2 with autoescaping, from a Catalog (the store, or staged folders for a preview),
and served with a Content Security Policy that allows no script at all and only this server's
stylesheet. Private repos show only to a viewer with a token: an `Authorization` header, or the
HttpOnly, SameSite=Strict cookie the login form sets, which holds a session id (hubpub/hub/sessions.py),
not the token; without one, a private repo is a 404 like a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from hubpub.hub import validation
from hubpub.hub.cards import CardCache, CardFacts, RenderedCard, hub_page, is_repo_id, quoted_path
from hubpub.hub.catalog import TYPE_PREFIX, Catalog, RepoView
from hubpub.hub.collections import Address, Collections, CollectionView
from hubpub.hub.errors import HubError
from hubpub.hub.sessions import LoginLimiter, Sessions
from hubpub.hub.store import Repo
from hubpub.hub.tokens import Identity, TokenTable
from hubpub.hub.wire import Limits, Response

COOKIE = "hubpub_session"
STYLESHEET = "/-/pages.css"
LOGIN = "/-/login"
LOGOUT = "/-/logout"
MAX_LOGIN_TOKEN = 256
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self' https:; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)
_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_LOCAL_PATH = re.compile(r"/(?!/)[A-Za-z0-9._~/-]*")
_HERE = Path(__file__).parent
_TYPE_BY_PLURAL = {"datasets": "dataset", "spaces": "space"}


@dataclass(frozen=True)
class PageRequest:
    """A request for a page, as the server's edge checked it."""

    method: str
    parts: tuple[str, ...]
    """The raw (still percent-encoded) path segments."""
    viewer: Identity | None
    token_refused: bool = False
    """A token came (header or cookie) and this Hub does not know it."""
    query: Mapping[str, list[str]] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)
    same_origin: bool = True
    """False when the request came from another site (Sec-Fetch-Site), or names a host or origin that is not this
    Hub's (hubpub/hub/hosts.py)."""
    session: str | None = None
    """The session id in the pages' cookie, if any."""
    client: str = ""
    """The client's address, for the limit on failed logins."""


def is_page(method: str, parts: list[str]) -> bool:
    """Whether a request is for the pages rather than the API; the server asks this before its own routes."""
    parts = _trimmed(parts)
    if parts[:1] == ["-"]:
        return len(parts) == 2 and (method, parts[1]) in _ENDPOINTS
    if method not in ("GET", "HEAD"):
        return False
    if parts == [""]:
        return True
    if len(parts) == 3 and parts[0] in (*_TYPE_BY_PLURAL, COLLECTIONS):
        return True
    return len(parts) == 2 and parts[0] not in ("api", "_lfs", COLLECTIONS, *_TYPE_BY_PLURAL)


def cookie_session(headers: list[str]) -> str | None:
    """The session id in the pages' cookie, from the request's Cookie headers."""
    for header in headers:
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name == COOKIE and value:
                return value
    return None


@dataclass(frozen=True)
class Listed:
    view: RepoView
    facts: CardFacts


@dataclass(frozen=True)
class Group:
    """Repos of one family on the index (or, without a family, of one base model, or one namespace)."""

    kind: str
    name: str
    repos: tuple[Listed, ...]


def _trimmed(parts: list[str]) -> list[str]:
    return parts[:-1] if len(parts) > 1 and parts[-1] == "" else parts


_STATIC = {"pages.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
_ENDPOINTS = {
    *((method, name) for name in _STATIC for method in ("GET", "HEAD")),
    ("GET", "login"),
    ("POST", "login"),
    ("POST", "logout"),
}


COLLECTIONS = "collections"


@dataclass(frozen=True)
class ShownItem:
    """A collection's item on a page: where it leads (a local page, huggingface.co, or nowhere) and its note."""

    type: str
    id: str
    link: str | None
    note: str | None


class Pages:
    """Renders every page from a catalog (and the store's collections, when it has any); `tokens` checks what the
    login form is given, `sessions` keeps who logged in, and `cards` keeps rendered cards between requests."""

    def __init__(
        self,
        catalog: Catalog,
        tokens: TokenTable,
        collections: Collections | None = None,
        limits: Limits | None = None,
        *,
        cards: CardCache | None = None,
    ) -> None:
        limits = limits or Limits()
        self.catalog = catalog
        self.collections = collections
        self.tokens = tokens
        self.sessions = Sessions(tokens, limits.session_seconds)
        self.login_limiter = LoginLimiter(limits.login_failures, limits.login_window_seconds)
        self.cards = cards or CardCache()
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters["size"] = human_size
        self.static = {name: (kind, (_HERE / "static" / name).read_bytes()) for name, kind in _STATIC.items()}

    def answer(self, request: PageRequest) -> Response:
        """The page for a request; a refusal is a page too, with the status and reason of the HubError."""
        try:
            return self._answer(request)
        except HubError as error:
            status = error.status if error.code != "RevisionNotFound" else 404
            return self._page(
                "error.html.j2", request, status=status, reason=error.message, message=_public_message(error)
            )

    def _answer(self, request: PageRequest) -> Response:
        parts = _trimmed(list(request.parts))
        if len(parts) == 2 and parts[0] == "-" and parts[1] in _STATIC:
            content_type, content = self.static[parts[1]]
            headers = {
                "Content-Type": content_type,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "max-age=300",
            }
            return Response(200, headers=headers, content=content)
        if parts == ["-", "login"]:
            return self._login(request) if request.method == "POST" else self._login_form(request)
        if parts == ["-", "logout"]:
            return self._logout(request)
        if parts == [""]:
            return self._index(request)
        if parts[0] == COLLECTIONS and len(parts) == 3:
            return self._collection(request, Address.parse(validation.url_segment(parts[1], "namespace"), parts[2]))
        kind = _TYPE_BY_PLURAL.get(parts[0], "model") if len(parts) == 3 else "model"
        namespace, name = parts[-2:]
        repo = Repo.checked(
            kind, validation.url_segment(namespace, "namespace"), validation.url_segment(name, "repo name")
        )
        return self._repo(request, repo)

    # -- pages -------------------------------------------------------------------------------------
    def _index(self, request: PageRequest) -> Response:
        groups: dict[tuple[str, str], list[Listed]] = {}
        for repo in self.catalog.visible(request.viewer):
            try:
                view = self.catalog.view(repo, request.viewer)
                facts = self.cards.info(view.card).facts if view.card else CardFacts()
            except (HubError, OSError):
                continue  # deleted, or left without a main branch, while we listed
            if view.family:
                key = ("family", view.family)
            elif facts.base_models and is_repo_id(facts.base_models[0]):
                key = ("quantizations of", facts.base_models[0])
            else:
                key = ("namespace", repo.namespace)
            groups.setdefault(key, []).append(Listed(view, facts))
        ordered = [
            Group(kind, name, tuple(sorted(items, key=lambda item: item.view.path)))
            for (kind, name), items in sorted(groups.items(), key=lambda group: (group[0][1].lower(), group[0][0]))
        ]
        collections = self.collections.visible(request.viewer) if self.collections else []
        return self._page("index.html.j2", request, groups=ordered, collections=collections)

    def _collection(self, request: PageRequest, address: Address) -> Response:
        if self.collections is None:
            raise HubError(404, "This Hub keeps no collections")
        collection: CollectionView = self.collections.view(address, request.viewer)
        known = {f"{TYPE_PREFIX[item.type]}{item.id}" for item in self.catalog.visible(request.viewer)}
        items = [
            ShownItem(item.type, item.id, self._item_link(item.type, item.id, known), item.note)
            for item in collection.items
        ]
        return self._page("collection.html.j2", request, collection=collection, items=items)

    @staticmethod
    def _item_link(kind: str, item_id: str, known: set[str]) -> str | None:
        if kind in TYPE_PREFIX:
            return hub_page(f"{TYPE_PREFIX[kind]}{item_id}", known)
        if kind == "collection":
            return f"/{COLLECTIONS}/{item_id}"
        return f"https://huggingface.co/papers/{quote(item_id)}"

    def _repo(self, request: PageRequest, repo: Repo) -> Response:
        view = self.catalog.view(repo, request.viewer)
        known = {f"{TYPE_PREFIX[item.type]}{item.id}" for item in self.catalog.visible(request.viewer)}
        rendered = RenderedCard("", CardFacts())
        if view.card is not None:
            rendered = self.cards.rendered(
                view.card, known=known, page=view.path, file_link=lambda path: self._file_url(view, path)
            )
        base_models = [(model, hub_page(model, known)) for model in rendered.facts.base_models]
        return self._page(
            "repo.html.j2",
            request,
            view=view,
            facts=rendered.facts,
            card_html=Markup(rendered.html),
            card_unrendered=rendered.unrendered,
            base_models=base_models,
            file_urls={row.path: self._file_url(view, quoted_path(row.path)) for row in view.files},
        )

    def _file_url(self, view: RepoView, relative: str) -> str:
        if self.catalog.preview:
            return "#files"  # a staged file is not served
        return f"/{view.path}/resolve/main/{relative}"

    def _login_form(self, request: PageRequest, *, status: int = 200, problem: str = "") -> Response:
        wanted = request.form.get("next") or request.query.get("next") or ["/"]
        return self._page(
            "login.html.j2", request, status=status, reason=problem, problem=problem, next=_local_path(wanted[0])
        )

    def _login(self, request: PageRequest) -> Response:
        if not request.same_origin:
            raise HubError(403, "The login form must be sent from this Hub's own pages")
        wait = self.login_limiter.retry_after(request.client)
        if wait:
            problem = f"Too many failed logins from your address: try again in {wait} seconds."
            refused = self._login_form(request, status=429, problem=problem)
            refused.headers["Retry-After"] = str(wait)
            return refused
        token = (request.form.get("token") or [""])[0].strip()
        identity = self.tokens.lookup(token) if token and len(token) <= MAX_LOGIN_TOKEN else None
        if identity is None:
            self.login_limiter.failed(request.client)
            return self._login_form(request, status=401, problem="This token is not valid on this Hub.")
        target = _local_path((request.form.get("next") or ["/"])[0])
        session = self.sessions.open(token)
        lifetime = int(self.sessions.lifetime)
        return _redirect(target, f"{COOKIE}={session}; Path=/; Max-Age={lifetime}; HttpOnly; SameSite=Strict")

    def _logout(self, request: PageRequest) -> Response:
        if not request.same_origin:
            raise HubError(403, "Logging out must be asked from this Hub's own pages")
        if request.session is not None:
            self.sessions.close(request.session)
        return _redirect("/", f"{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")

    def _page(
        self, template: str, request: PageRequest, *, status: int = 200, reason: str = "", **context: Any
    ) -> Response:
        here = "/" + "/".join(request.parts) if request.method != "POST" else "/"
        html = self.environment.get_template(template).render(
            preview=self.catalog.preview,
            viewer=request.viewer.name if request.viewer else None,
            token_refused=request.token_refused,
            here=_local_path(here),
            login=LOGIN,
            logout=LOGOUT,
            stylesheet=STYLESHEET,
            **context,
        )
        return Response(status, headers=dict(_PAGE_HEADERS), content=html.encode("utf-8"), reason=reason)


def _redirect(target: str, cookie: str) -> Response:
    headers = {**_PAGE_HEADERS, "Location": target, "Set-Cookie": cookie}
    return Response(303, headers=headers, content=b"")


def _local_path(value: str) -> str:
    """A path on this server to send the browser back to; anything else (another site, `//host`) is `/`."""
    return value if _LOCAL_PATH.fullmatch(value) else "/"


def _public_message(error: HubError) -> str:
    if error.status == 404:
        return "This page does not exist, or you need to log in to see it."
    return error.message


def human_size(size: int) -> str:
    """Bytes in decimal units, as the Hub shows file sizes."""
    value = float(size)
    for unit in ("Bytes", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{size} Bytes" if unit == "Bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
