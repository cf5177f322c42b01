"""Collections show each viewer only the items it may read: attacks by anonymous users and other namespaces.

bob keeps a public collection that holds one of his private repos (as its owner may); alice and anonymous
users try to learn of it through huggingface_hub's own collection calls and raw HTTP: its id, its note,
the item filter of the listing, positions and counts, and the item routes of a collection they can edit.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from huggingface_hub.errors import HfHubHTTPError

from tests.hub.harness import ALICE, BOB, Hub, Reply, exchange, json_request, request

SECRET = "bob/secret-model"
SECRET_NOTE = "unreleased: W2A16 beats the base"
NEVER = "bob/never-existed"
VARIABLE_HEADERS = ("date", "x-request-id")


@pytest.fixture
def shelf(hub: Hub) -> str:
    """bob's public collection: his public repo first, then his private one, both with notes."""
    bob = hub.api(BOB)
    bob.create_repo("bob/open-model")
    bob.create_repo(SECRET, private=True)
    slug = bob.create_collection("Bob's shelf").slug
    bob.add_collection_item(slug, "bob/open-model", "model", note="public facts")
    bob.add_collection_item(slug, SECRET, "model", note=SECRET_NOTE)
    return slug


def shown(reply: Reply) -> tuple[int, dict[str, str], bytes]:
    """A reply as a client sees it, less the headers that change with every request."""
    headers = {name: value for name, value in reply.headers.items() if name not in VARIABLE_HEADERS}
    return reply.status, headers, reply.body


def get(hub: Hub, target: str, token: str | None) -> Reply:
    return exchange(hub.url, request("GET", target, token=token))


def test_a_private_repo_in_a_public_collection_is_left_out_for_anonymous_users_and_other_namespaces(
    hub: Hub, shelf: str
) -> None:
    owner = hub.api(BOB).get_collection(shelf)
    assert [(item.item_id, item.position, item.note) for item in owner.items] == [
        ("bob/open-model", 0, "public facts"),
        (SECRET, 1, SECRET_NOTE),
    ]
    for viewer, token in ((hub.api(False), None), (hub.api(ALICE), ALICE)):
        collection = viewer.get_collection(shelf)
        assert [(item.item_id, item.position, item.note) for item in collection.items] == [
            ("bob/open-model", 0, "public facts")
        ]
        (listed,) = [found for found in viewer.list_collections(owner="bob")]
        assert [item.item_id for item in listed.items] == ["bob/open-model"]
        for target in (f"/api/collections/{shelf}", "/api/collections", "/api/collections?owner=bob"):
            body = get(hub, target, token).body.decode()
            assert "secret" not in body and "unreleased" not in body and "bob/open-model" in body, target


def test_the_item_filter_answers_for_a_hidden_repo_exactly_as_for_one_that_never_existed(hub: Hub, shelf: str) -> None:
    assert [found.slug for found in hub.api(BOB).list_collections(item=f"models/{SECRET}")] == [shelf]
    for token in (None, ALICE):
        client = hub.api(token or False)
        assert list(client.list_collections(item=f"models/{SECRET}")) == []
        hidden = get(hub, f"/api/collections?item=models/{SECRET}", token)
        missing = get(hub, f"/api/collections?item=models/{NEVER}", token)
        assert shown(hidden) == shown(missing) and hidden.status == 200 and hidden.json() == []
        both = get(hub, f"/api/collections?item=models/bob/open-model&item=models/{SECRET}", token)
        assert shown(both) == shown(get(hub, f"/api/collections?item=models/bob/open-model&item=models/{NEVER}", token))


def test_a_private_collection_as_an_item_is_hidden_and_filters_as_missing(hub: Hub, shelf: str) -> None:
    bob = hub.api(BOB)
    drafts = bob.create_collection("Drafts", private=True).slug
    bob.add_collection_item(shelf, drafts, "collection", note="my drafts")
    assert [item.item_id for item in bob.get_collection(shelf).items][-1] == drafts
    never = drafts.rsplit("-", 1)[0] + "-" + "0" * 24
    for token in (None, ALICE):
        assert [item.item_id for item in hub.api(token or False).get_collection(shelf).items] == ["bob/open-model"]
        hidden = get(hub, f"/api/collections?item=collections/{drafts}", token)
        assert shown(hidden) == shown(get(hub, f"/api/collections?item=collections/{never}", token))
        assert hidden.json() == []


def same_but_for(hidden: Reply, missing: Reply, hidden_name: str, missing_name: str) -> None:
    """Two refusals alike in every byte but the name the request itself gave."""
    assert hidden.status == missing.status == 404
    assert hidden.body == missing.body.replace(missing_name.encode(), hidden_name.encode())
    renamed = {name: value.replace(missing_name, hidden_name) for name, value in shown(missing)[1].items()}
    assert shown(hidden)[1] == renamed


def test_a_repo_made_private_after_it_was_added_leaves_the_collection_and_its_item_reads_as_missing(
    hub: Hub,
) -> None:
    alice, bob = hub.api(ALICE), hub.api(BOB)
    alice.create_repo("alice/first")
    alice.create_repo("alice/last")
    bob.create_repo("bob/shared")
    slug = alice.create_collection("Picks").slug
    alice.add_collection_item(slug, "alice/first", "model")
    alice.add_collection_item(slug, "bob/shared", "model", note="bob's, public for now")
    alice.add_collection_item(slug, "alice/last", "model")
    shared = alice.get_collection(slug).items[1]
    assert shared.item_id == "bob/shared"

    bob.update_repo_settings("bob/shared", private=True)
    assert [(item.item_id, item.position) for item in alice.get_collection(slug).items] == [
        ("alice/first", 0),
        ("alice/last", 1),
    ]
    assert [item.item_id for item in hub.api(False).get_collection(slug).items] == ["alice/first", "alice/last"]
    assert [item.item_id for item in bob.get_collection(slug).items] == ["alice/first", "bob/shared", "alice/last"]
    echoed = alice.update_collection_metadata(slug, description="still mine")
    assert [item.item_id for item in echoed.items] == ["alice/first", "alice/last"]

    # The item routes: alice edits her own collection, yet bob's private repo is not there for her.
    never_id = "0123456789abcdef01234567"
    items = f"/api/collections/{slug}/items"
    for method, body in (("PATCH", {"note": "found you"}), ("PATCH", {"position": 0}), ("DELETE", None)):
        hidden = exchange(hub.url, json_request(method, f"{items}/{shared.item_object_id}", body))
        missing = exchange(hub.url, json_request(method, f"{items}/{never_id}", body))
        same_but_for(hidden, missing, shared.item_object_id, never_id)
    readding = exchange(hub.url, json_request("POST", items, {"item": {"id": "bob/shared", "type": "model"}}))
    absent = exchange(hub.url, json_request("POST", items, {"item": {"id": "bob/absent", "type": "model"}}))
    same_but_for(readding, absent, "bob/shared", "bob/absent")
    with pytest.raises(HfHubHTTPError) as refused:
        alice.update_collection_item(slug, alice.get_collection(slug).items[1].item_object_id, position=2)
    assert refused.value.response.status_code == 400, "alice sees two items: positions 0 and 1"

    alice.update_collection_item(slug, alice.get_collection(slug).items[1].item_object_id, position=0)
    assert [item.item_id for item in alice.get_collection(slug).items] == ["alice/last", "alice/first"]
    bob.update_repo_settings("bob/shared", private=False)
    back = [(item.item_id, item.note) for item in hub.api(False).get_collection(slug).items]
    assert back == [("alice/last", None), ("alice/first", None), ("bob/shared", "bob's, public for now")]


def test_the_answers_that_echo_a_collection_show_only_what_the_caller_may_read(hub: Hub, shelf: str) -> None:
    alice = hub.api(ALICE)
    alice.create_repo("alice/mine")
    slug = alice.create_collection("Mixed").slug
    alice.add_collection_item(slug, shelf, "collection")
    bob = hub.api(BOB)
    bob.create_repo("bob/later")
    alice.add_collection_item(slug, "bob/later", "model")
    bob.update_repo_settings("bob/later", private=True)
    added = alice.add_collection_item(slug, "alice/mine", "model")
    assert [(item.item_id, item.position) for item in added.items] == [(shelf, 0), ("alice/mine", 1)]
    raw = exchange(hub.url, json_request("PATCH", f"/api/collections/{slug}", {"description": "d"})).json()
    assert isinstance(raw, dict) and "bob/later" not in json.dumps(raw)


def test_a_deleted_repo_leaves_every_collection_and_does_not_return_with_a_new_repo_of_its_name(
    hub: Hub, shelf: str
) -> None:
    bob = hub.api(BOB)
    bob.create_repo("bob/short-lived")
    bob.add_collection_item(shelf, "bob/short-lived", "model", note="soon gone")
    bob.delete_repo("bob/short-lived")
    assert "bob/short-lived" not in [item.item_id for item in bob.get_collection(shelf).items]
    gone = get(hub, f"/api/collections?item={quote('models/bob/short-lived')}", BOB)
    assert gone.json() == []
    bob.update_collection_metadata(shelf, description="a write drops the item from the file")
    stored = next((hub.root / "collections" / "bob").glob("*.json")).read_text(encoding="utf-8")
    assert "bob/short-lived" not in stored and "soon gone" not in stored
    bob.create_repo("bob/short-lived")
    assert [item.item_id for item in bob.get_collection(shelf).items] == ["bob/open-model", SECRET]
