"""Who a token is and what it may do, and the tokens file that lets a team or a CI box share one Hub.

A tokens file is YAML (or JSON):

    tokens:
      - name: ci                 # the account the token acts as (whoami, commit author)
        sha256: 9f86d08...       # sha256 of the token, in hex (or `token: hf_...`, the token itself)
        namespaces: [team]       # where it may write (and read private repos) besides its own name; "*": all
        role: write              # write (default) or read

Only sha256 digests of tokens are kept in memory, so a token never sits in the server's tables.

Whoever can change the file can give themselves every namespace, so a file that other users (its group
included) can write, or that sits in a folder they can write without the sticky bit, is refused. A file
they can read is refused when it holds plain `token:` entries (every listed token would be theirs), and
named in a warning when it holds only digests (a token someone chose can be guessed from its digest
offline; the random ones `hub new-token` makes cannot).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from hubpub.hub.errors import HubConfigError
from hubpub.hub.validation import REPO_PART_MAX

MIN_TOKEN_LENGTH = 16
_DIGEST = re.compile(r"[0-9a-f]{64}")
_NAMESPACE = re.compile(r"[A-Za-z0-9._-]+")
_FIELDS = ("name", "token", "sha256", "namespaces", "role")
_EPHEMERAL_LOCK = threading.Lock()


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, and which namespaces it may write (None: every namespace).

    A token owns its own name, its orgs and `writable`; it reads private repos there, and writes
    there unless it is read-only. Namespaces compare without case, as on huggingface.co.
    """

    name: str = "hubpub"
    orgs: tuple[str, ...] = ()
    writable: frozenset[str] | None = None
    read_only: bool = False

    def owns(self, namespace: str) -> bool:
        if self.writable is None:
            return True
        owned = {owner.lower() for owner in (*self.writable, self.name, *self.orgs)}
        return namespace.lower() in owned

    def can_write(self, namespace: str) -> bool:
        return not self.read_only and self.owns(namespace)

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces it owns besides its own name, as whoami lists them."""
        extra = sorted((self.writable or frozenset()) - {self.name} - set(self.orgs))
        return (*self.orgs, *extra)

    @property
    def role(self) -> str:
        return "read" if self.read_only else "write"


def can_read(identity: Identity | None, namespace: str, *, private: bool) -> bool:
    """Whether a caller (None: no token) may see a repo: a public one everybody, a private one its owners."""
    return not private or (identity is not None and identity.owns(namespace))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogateescape")).hexdigest()


class TokenTable:
    """Identities by the sha256 of their token."""

    def __init__(self, by_digest: Mapping[str, Identity]) -> None:
        self.by_digest = dict(by_digest)

    @classmethod
    def from_tokens(cls, tokens: Mapping[str, Identity]) -> TokenTable:
        return cls({token_digest(token): identity for token, identity in tokens.items()})

    def lookup(self, token: str) -> Identity | None:
        return self.by_digest.get(token_digest(token))

    def mint_ephemeral(self, identity: Identity) -> str:
        """A fresh token for `identity`, valid until `revoke_ephemeral` (a job's token, for the job's life)."""
        token = f"hf_job_{secrets.token_urlsafe(30)}"
        with _EPHEMERAL_LOCK:
            self.by_digest[token_digest(token)] = identity
        return token

    def revoke_ephemeral(self, token: str) -> None:
        with _EPHEMERAL_LOCK:
            self.by_digest.pop(token_digest(token), None)


def load_tokens_file(path: Path, *, warn: Callable[[str], None] | None = None) -> TokenTable:
    """Read a tokens file; any mistake is a HubConfigError that names the file, line and column, and a file
    that other users may change or read is refused (or, for digests only, named to `warn`)."""
    try:
        with path.open(encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            source = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise HubConfigError(f"{path}: cannot read the tokens file: {exc}") from None
    try:
        document = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise HubConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if document is None:
        raise HubConfigError(f"{path}: empty tokens file; it needs a `tokens:` list")
    tokens_node = _top_level_tokens(path, document)
    table: dict[str, Identity] = {}
    for index, entry in enumerate(tokens_node.value):
        digest, identity = _entry(path, f"tokens[{index}]", entry)
        if digest in table:
            raise _problem(path, entry, f"tokens[{index}]", "the same token is listed twice")
        table[digest] = identity
    plain = any(_scalar(key) == "token" for entry in tokens_node.value for key, _ in entry.value)
    _check_access(path, mode, plain=plain, warn=warn)
    return TokenTable(table)


def _check_access(path: Path, mode: int, *, plain: bool, warn: Callable[[str], None] | None) -> None:
    if os.name != "posix":
        return
    if mode & 0o022:
        raise HubConfigError(
            f"{path}: other users can write this tokens file (mode {stat.filemode(mode)}) and so give themselves"
            f" any namespace: chmod 600 {path}"
        )
    for folder in path.resolve().parents:
        folder_mode = folder.stat().st_mode
        if folder_mode & 0o022 and not folder_mode & stat.S_ISVTX:
            raise HubConfigError(
                f"{path}: other users can write its folder {folder} (mode {stat.filemode(folder_mode)}) and so"
                " replace the tokens file: keep it in a folder only you can write"
            )
    if mode & 0o044 and plain:
        raise HubConfigError(
            f"{path}: other users can read this tokens file (mode {stat.filemode(mode)}) and it holds plain `token:`"
            f" entries: chmod 600 {path}, or list tokens by their sha256 (hubpub hub new-token)"
        )
    if mode & 0o044 and warn is not None:
        warn(f"{path}: other users can read this tokens file (mode {stat.filemode(mode)}): chmod 600 {path}")


def _problem(path: Path, node: yaml.Node, where: str, message: str) -> HubConfigError:
    return HubConfigError(f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {where}: {message}")


def _top_level_tokens(path: Path, document: yaml.Node) -> yaml.SequenceNode:
    if not isinstance(document, yaml.MappingNode):
        raise _problem(path, document, "top level", "must be a mapping with a `tokens:` list")
    found: yaml.Node | None = None
    for key, value in document.value:
        if _scalar(key) != "tokens":
            raise _problem(path, key, str(_scalar(key)), "unknown key; the file holds only `tokens:`")
        found = value
    if not isinstance(found, yaml.SequenceNode) or not found.value:
        raise _problem(path, found or document, "tokens", "must be a non-empty list of tokens")
    return found


def _scalar(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _entry(path: Path, where: str, node: yaml.Node) -> tuple[str, Identity]:
    if not isinstance(node, yaml.MappingNode):
        raise _problem(path, node, where, "each token is a mapping of name, sha256 (or token), namespaces, role")
    fields: dict[str, yaml.Node] = {}
    for key, value in node.value:
        name = _scalar(key)
        if name not in _FIELDS:
            raise _problem(path, key, f"{where}.{name}", f"unknown key; use {', '.join(_FIELDS)}")
        if name in fields:
            raise _problem(path, key, f"{where}.{name}", "given twice")
        fields[name] = value
    account = _namespace(path, fields.get("name"), node, f"{where}.name")
    digest = _token_digest(path, fields, node, where)
    role = _scalar(fields["role"]) if "role" in fields else "write"
    if role not in ("read", "write"):
        raise _problem(path, fields["role"], f"{where}.role", "must be read or write")
    namespaces: frozenset[str] | None = frozenset({account})
    if "namespaces" in fields:
        namespaces = _namespaces(path, fields["namespaces"], f"{where}.namespaces")
    return digest, Identity(name=account, writable=namespaces, read_only=role == "read")


def _namespace(path: Path, node: yaml.Node | None, parent: yaml.Node, where: str) -> str:
    value = _scalar(node) if node is not None else None
    if value is None:
        raise _problem(path, node or parent, where, "required: a namespace-like name")
    if not (_NAMESPACE.fullmatch(value) and len(value) <= REPO_PART_MAX):
        raise _problem(path, node or parent, where, "use ASCII letters, digits, '-', '_' and '.' (at most 96)")
    return value


def _token_digest(path: Path, fields: dict[str, yaml.Node], parent: yaml.Node, where: str) -> str:
    if ("token" in fields) == ("sha256" in fields):
        raise _problem(path, parent, where, "give exactly one of sha256 (preferred) or token")
    if "sha256" in fields:
        digest = (_scalar(fields["sha256"]) or "").lower()
        if not _DIGEST.fullmatch(digest):
            raise _problem(path, fields["sha256"], f"{where}.sha256", "must be 64 hex digits")
        return digest
    token = _scalar(fields["token"]) or ""
    if len(token) < MIN_TOKEN_LENGTH or any(char.isspace() for char in token):
        raise _problem(
            path, fields["token"], f"{where}.token", f"must be at least {MIN_TOKEN_LENGTH} characters, no spaces"
        )
    return token_digest(token)


def _namespaces(path: Path, node: yaml.Node, where: str) -> frozenset[str] | None:
    if isinstance(node, yaml.ScalarNode) and node.value == "*":
        return None
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise _problem(path, node, where, 'must be a non-empty list of namespaces, or "*" for every namespace')
    return frozenset(_namespace(path, item, node, f"{where}[{index}]") for index, item in enumerate(node.value))


def new_token_entry(name: str, namespaces: tuple[str, ...] = (), *, read_only: bool = False) -> tuple[str, str]:
    """A fresh token and the tokens-file entry that admits it (by its sha256 only)."""
    for namespace in (name, *namespaces):
        if not (_NAMESPACE.fullmatch(namespace) and len(namespace) <= REPO_PART_MAX):
            raise HubConfigError(f"{namespace!r} is not a namespace: use ASCII letters, digits, '-', '_' and '.'")
    token = f"hf_{secrets.token_urlsafe(30)}"
    lines = [f"  - name: {name}", f"    sha256: {token_digest(token)}"]
    if namespaces:
        lines.append(f"    namespaces: [{', '.join(namespaces)}]")
    lines.append(f"    role: {'read' if read_only else 'write'}")
    return token, "\n".join(lines) + "\n"


def add_new_token(path: Path, name: str, namespaces: tuple[str, ...] = (), *, read_only: bool = False) -> str:
    """A fresh token, added by its sha256 to a tokens file: a new file is made readable by its owner only
    (0600); an existing one must pass the checks `hub serve` makes, and must still load with the entry in it
    (else it is left as it was)."""
    token, entry = new_token_entry(name, namespaces, read_only=read_only)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _append_entry(path, entry, token)
    except OSError as exc:
        raise HubConfigError(f"{path}: cannot create the tokens file: {exc.strerror or exc}") from None
    else:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write("tokens:\n" + entry)
    return token


def _append_entry(path: Path, entry: str, token: str) -> None:
    load_tokens_file(path)
    try:
        with path.open("r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            newline = b""
            if size:
                handle.seek(size - 1)
                newline = b"" if handle.read(1) == b"\n" else b"\n"
            handle.write(newline + entry.encode())
        try:
            admitted = load_tokens_file(path).lookup(token) is not None
        except HubConfigError:
            admitted = False
        if not admitted:
            with path.open("r+b") as handle:
                handle.truncate(size)
            raise HubConfigError(
                f"{path}: the new entry does not fit this file's layout; it is unchanged. Add the entry under"
                f" `tokens:` by hand:\n{entry}"
            )
    except OSError as exc:
        raise HubConfigError(f"{path}: cannot add the entry: {exc.strerror or exc}") from None
