"""Item 1: repo names that climb out of their namespace or out of the store are refused before the store.

bob may write only `bob/*`; alice keeps a private repo. Every attack below worked before the names
were checked at the edge: `..` and `%2F` in a URL's name part, or in a create/delete body.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from huggingface_hub.utils import HFValidationError, validate_repo_id
from hypothesis import given, settings
from hypothesis import strategies as st

from hubpub.hub import HubServer
from tests.hub.harness import ALICE, BOB, TOKENS, Hub, exchange, files_under, json_request, request


@pytest.fixture
def alice_secret(hub: Hub) -> str:
    hub.api(ALICE).create_repo("alice/secret", private=True)
    hub.api(ALICE).upload_file(path_or_fileobj=b"private", path_in_repo="secret.txt", repo_id="alice/secret")
    return str(hub.api(ALICE).model_info("alice/secret").sha)


def assert_alice_secret_untouched(hub: Hub, head: str) -> None:
    info = hub.api(ALICE).model_info("alice/secret")
    assert info.private and info.sha == head
    assert hub.api(ALICE).list_repo_refs("alice/secret").tags == []


CLIMBS = ["..%2Falice%2Fsecret", "..%2F..%2Fmodels%2Falice%2Fsecret", "%2E%2E%2Falice%2Fsecret"]


@pytest.mark.parametrize("name", CLIMBS)
def test_a_name_with_dot_dot_and_encoded_slashes_never_reaches_another_namespace(
    hub: Hub, alice_secret: str, name: str
) -> None:
    attacks = [
        request("GET", f"/api/models/bob/{name}", token=BOB),
        request("GET", f"/api/models/bob/{name}/tree/main", token=BOB),
        request("GET", f"/bob/{name}/resolve/main/secret.txt", token=BOB),
        json_request("PUT", f"/api/models/bob/{name}/settings", {"visibility": "public"}, token=BOB),
        json_request("POST", f"/api/models/bob/{name}/tag/main", {"tag": "pwned"}, token=BOB),
        json_request("POST", f"/api/models/bob/{name}/branch/pwned", {}, token=BOB),
    ]
    for attack in attacks:
        reply = exchange(hub.url, attack)
        assert reply.status == 400, (attack, reply.status, reply.body)
        assert b"private" not in reply.body
    assert_alice_secret_untouched(hub, alice_secret)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "../alice/secret", "organization": "bob"},
        {"name": "secret", "organization": "bob/../alice"},
        {"name": "..", "organization": "bob"},
        {"name": "..", "organization": ".."},
        {"name": "../../../../x"},
    ],
)
def test_create_and_delete_bodies_cannot_climb_out(hub: Hub, alice_secret: str, body: dict[str, str]) -> None:
    before = files_under(hub.root.parent) - files_under(hub.root)
    for method, route in (("DELETE", "/api/repos/delete"), ("POST", "/api/repos/create")):
        reply = exchange(hub.url, json_request(method, route, body, token=BOB))
        assert reply.status == 400, (method, body, reply.body)
    assert files_under(hub.root.parent) - files_under(hub.root) == before
    assert_alice_secret_untouched(hub, alice_secret)


def test_a_name_in_the_url_that_is_not_utf8_is_refused(hub: Hub) -> None:
    assert exchange(hub.url, request("GET", "/api/models/alice/%FF%FE")).status == 400
    assert exchange(hub.url, request("GET", "/alice/%C0%AE%C0%AE/resolve/main/x")).status == 400


@pytest.mark.parametrize("name", ["a" * 97, "-lead", "trail.", "a--b", "x.git", "caf\u00e9", "sp ace", ""])
def test_names_huggingface_co_refuses_are_refused(hub: Hub, name: str) -> None:
    reply = exchange(hub.url, json_request("POST", "/api/repos/create", {"name": name}))
    assert reply.status == 400, reply.body
    assert "Invalid repo name" in reply.json()["error"]  # type: ignore[index]


@pytest.fixture(scope="module")
def shared_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One server for all hypothesis examples (a server per example would dominate the run)."""
    root = tmp_path_factory.mktemp("names") / "store"
    log: list[str] = []
    with HubServer(root, tokens=TOKENS, log=log.append) as server:
        yield Hub(server, root, log)


NAME_PIECES = st.sampled_from(["a", "Z9", "-", "_", ".", "..", "--", "/", "%2F", ".git", "\u00e9", "\x00", " ", "\\"])
NAMES = st.one_of(
    st.text(max_size=100),
    st.lists(NAME_PIECES, max_size=8).map("".join),
    st.from_regex(r"[A-Za-z0-9._-]{1,100}", fullmatch=True),
)


@settings(max_examples=150)
@given(name=NAMES)
def test_the_server_accepts_exactly_the_names_huggingface_hub_accepts(shared_hub: Hub, name: str) -> None:
    """The client's own validator (the Hub's rule) is the oracle; an accepted repo lands where its id says."""
    try:
        validate_repo_id(f"alice/{name}")
        valid = True
    except HFValidationError:
        valid = False
    reply = exchange(shared_hub.url, json_request("POST", "/api/repos/create", {"name": name}))
    assert reply.status == (200 if valid else 400), (name, reply.body)
    if valid:
        assert (shared_hub.root / "repos" / "models" / "alice" / name / "meta.json").is_file()
        assert exchange(shared_hub.url, json_request("DELETE", "/api/repos/delete", {"name": name})).status == 200
    outside = files_under(shared_hub.root.parent) - files_under(shared_hub.root) - {shared_hub.root}
    assert outside == set()
