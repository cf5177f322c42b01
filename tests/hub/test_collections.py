"""Collections on the embedded Hub, through huggingface_hub's own collection methods, and the requests it refuses."""

from __future__ import annotations

from typing import cast

import pytest
from huggingface_hub import Collection
from huggingface_hub.errors import HfHubHTTPError

from hubpub.hub import HubServer, Identity, TokenTable
from hubpub.hub.collections import DESCRIPTION_MAX, NOTE_MAX, TITLE_MAX
from tests.hub.harness import ALICE, BOB, Hub, exchange, files_under, json_request, request

READER = "hf_alice_reader_0123456789"


def owner_name(collection: Collection) -> str:
    """huggingface.co answers with the owner as an object, which huggingface_hub keeps as it came."""
    owner: dict[str, str] = cast(dict[str, str], collection.owner)
    return owner["name"]


def status_of(error: pytest.ExceptionInfo[HfHubHTTPError]) -> int:
    return int(error.value.response.status_code)


@pytest.fixture
def repos(hub: Hub) -> list[str]:
    names = ["alice/base", "alice/model-w4", "alice/model-w8"]
    for name in names:
        hub.api().create_repo(name)
    return names


def test_a_collection_round_trips_through_the_client(hub: Hub, repos: list[str]) -> None:
    client = hub.api()
    created = client.create_collection("Tiny family", description="Quantized variants")
    assert created.slug.startswith("alice/tiny-family-") and owner_name(created) == "alice"
    for repo_id, note in zip(repos, ["the base", "W4A16 · 1 MB", None], strict=True):
        client.add_collection_item(created.slug, repo_id, "model", note=note)

    collection = client.get_collection(created.slug)
    assert [(item.item_id, item.item_type, item.position, item.note) for item in collection.items] == [
        ("alice/base", "model", 0, "the base"),
        ("alice/model-w4", "model", 1, "W4A16 · 1 MB"),
        ("alice/model-w8", "model", 2, None),
    ]
    assert (collection.title, collection.description, collection.private) == (
        "Tiny family",
        "Quantized variants",
        False,
    )

    last = collection.items[2]
    client.update_collection_item(created.slug, last.item_object_id, note="W8A8 · 2 MB", position=0)
    moved = client.get_collection(created.slug)
    assert [(item.item_id, item.note) for item in moved.items][:2] == [
        ("alice/model-w8", "W8A8 · 2 MB"),
        ("alice/base", "the base"),
    ]
    assert moved.last_updated >= collection.last_updated

    client.delete_collection_item(created.slug, moved.items[1].item_object_id)
    assert [item.item_id for item in client.get_collection(created.slug).items] == ["alice/model-w8", "alice/model-w4"]
    renamed = client.update_collection_metadata(created.slug, title="Renamed family")
    assert renamed.slug.endswith(created.slug.rsplit("-", 1)[-1]) and renamed.title == "Renamed family"
    assert client.get_collection(created.slug).title == "Renamed family", "the old slug still names it by its id"

    client.delete_collection(created.slug)
    with pytest.raises(HfHubHTTPError) as missing:
        client.get_collection(created.slug)
    assert status_of(missing) == 404
    client.delete_collection(created.slug, missing_ok=True)


def test_the_same_title_twice_is_the_same_collection_and_an_item_is_added_once(hub: Hub, repos: list[str]) -> None:
    client = hub.api()
    first = client.create_collection("Family")
    assert client.create_collection("Family", exists_ok=True).slug == first.slug
    with pytest.raises(HfHubHTTPError) as conflict:
        client.create_collection("Family")
    assert status_of(conflict) == 409
    client.add_collection_item(first.slug, repos[0], "model")
    again = client.add_collection_item(first.slug, repos[0], "model", exists_ok=True)
    assert [item.item_id for item in again.items] == [repos[0]]


def test_collections_survive_a_restart_of_the_server(hub: Hub, repos: list[str]) -> None:
    slug = hub.api().create_collection("Kept").slug
    hub.api().add_collection_item(slug, repos[1], "model", note="kept")
    hub.server.stop()
    with HubServer(hub.root, tokens={ALICE: Identity(name="alice", writable=frozenset())}) as again:
        hub.server = again
        assert [(item.item_id, item.note) for item in hub.api().get_collection(slug).items] == [(repos[1], "kept")]


def test_listing_filters_by_owner_and_item_and_shows_four_items(hub: Hub, repos: list[str]) -> None:
    alice, bob = hub.api(), hub.api(BOB)
    mine = alice.create_collection("Mine").slug
    theirs = bob.create_collection("Bob's").slug
    for repo_id in repos:
        alice.add_collection_item(mine, repo_id, "model")
    alice.add_collection_item(mine, "2311.12983", "paper")
    alice.add_collection_item(mine, theirs, "collection")
    assert [(item.item_type, item.item_id) for item in alice.get_collection(mine).items][3:] == [
        ("paper", "2311.12983"),
        ("collection", theirs),
    ]
    listed = list(alice.list_collections(owner="alice"))
    assert [collection.slug for collection in listed] == [mine]
    assert len(listed[0].items) == 4
    assert [c.slug for c in alice.list_collections(item="models/alice/model-w8")] == [mine]
    assert list(alice.list_collections(item="papers/2401.00001")) == []
    assert {owner_name(c) for c in alice.list_collections()} == {"alice", "bob"}


def test_private_collections_read_as_missing_to_everyone_else(hub: Hub) -> None:
    slug = hub.api().create_collection("Secret", private=True).slug
    assert hub.api().get_collection(slug).private
    for other in (hub.api(BOB), hub.api(False)):
        with pytest.raises(HfHubHTTPError) as hidden:
            other.get_collection(slug)
        assert status_of(hidden) == 404
        assert slug not in [collection.slug for collection in other.list_collections()]


def test_a_token_edits_only_its_own_namespaces_collections(hub: Hub, repos: list[str]) -> None:
    slug = hub.api().create_collection("Alice's").slug
    bob = hub.api(BOB)
    with pytest.raises(HfHubHTTPError) as elsewhere:
        bob.create_collection("Intruder", namespace="alice")
    assert status_of(elsewhere) == 403
    with pytest.raises(HfHubHTTPError) as adding:
        bob.add_collection_item(slug, "bob/anything", "model")
    assert status_of(adding) == 403
    with pytest.raises(HfHubHTTPError) as deleting:
        bob.delete_collection(slug)
    assert status_of(deleting) == 403
    with pytest.raises(HfHubHTTPError) as unnamed:
        hub.api(False).update_collection_metadata(slug, title="anonymous")
    assert status_of(unnamed) == 401
    assert hub.api().get_collection(slug).title == "Alice's"


def test_a_read_only_token_reads_but_cannot_edit(hub: Hub) -> None:
    slug = hub.api().create_collection("Shelf", private=True).slug
    reader_identity = Identity(name="reader", orgs=("alice",), read_only=True)
    hub.server.tokens.by_digest.update(TokenTable.from_tokens({READER: reader_identity}).by_digest)
    reader = hub.api(READER)
    assert reader.get_collection(slug).title == "Shelf"
    with pytest.raises(HfHubHTTPError, match="read-only") as refused:
        reader.update_collection_metadata(slug, description="changed")
    assert status_of(refused) == 403


def test_items_must_exist_and_be_visible_and_of_a_known_type(hub: Hub, repos: list[str]) -> None:
    slug = hub.api().create_collection("Checked").slug
    hub.api(BOB).create_repo("bob/hidden", private=True)
    for item_id, kind, status in [
        ("alice/absent", "model", 404),
        ("bob/hidden", "model", 404),
        ("alice/base", "dataset", 404),
        ("alice/base", "bucket", 400),
        ("../../etc/passwd", "model", 400),
        ("not-an-arxiv-id", "paper", 400),
        ("alice/nothing-0123456789abcdef01234567", "collection", 404),
    ]:
        reply = exchange(
            hub.url, json_request("POST", f"/api/collections/{slug}/items", {"item": {"id": item_id, "type": kind}})
        )
        assert reply.status == status, (item_id, kind, reply.body)
    assert hub.api().get_collection(slug).items == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/collections/alice/..%2F..%2Fsigning-key",
        "/api/collections/../repos",
        "/api/collections/alice/title-0123",
        "/api/collections/alice/title-0123456789ABCDEF01234567",
        "/api/collections/al%2Fice/title-0123456789abcdef01234567",
        "/api/collections/alice/" + "a" * 300 + "-0123456789abcdef01234567",
        "/api/collections/alice/title-0123456789abcdef01234567/items/..%2F..",
    ],
)
def test_bad_slugs_are_refused_before_the_store(hub: Hub, path: str) -> None:
    before = files_under(hub.root)
    for method in ("PATCH", "DELETE") if "/items/" in path else ("GET", "DELETE"):
        reply = exchange(hub.url, request(method, path, token=ALICE))
        assert reply.status == 400, (method, path, reply.body)
    assert files_under(hub.root) == before


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ({"title": "x" * (TITLE_MAX + 1), "namespace": "alice"}, "title"),
        ({"title": "", "namespace": "alice"}, "title"),
        ({"title": "line\nbreak", "namespace": "alice"}, "title"),
        ({"title": "ok", "namespace": "alice", "description": "d" * (DESCRIPTION_MAX + 1)}, "description"),
        ({"title": "ok", "namespace": "../alice"}, "namespace"),
        ({"title": "ok", "namespace": "alice", "private": "yes"}, "private"),
        ({"title": 5, "namespace": "alice"}, "title"),
    ],
)
def test_bad_collection_fields_are_refused(hub: Hub, body: dict[str, object], what: str) -> None:
    reply = exchange(hub.url, json_request("POST", "/api/collections", body))
    assert reply.status == 400 and what in reply.body.decode(), reply.body
    assert not (hub.root / "collections").exists() or not any((hub.root / "collections").rglob("*.json"))


def test_oversized_notes_unknown_settings_and_bad_positions_are_refused(hub: Hub, repos: list[str]) -> None:
    client = hub.api()
    slug = client.create_collection("Notes").slug
    item = client.add_collection_item(slug, repos[0], "model", note="short").items[0]
    with pytest.raises(HfHubHTTPError) as long_note:
        client.add_collection_item(slug, repos[1], "model", note="n" * (NOTE_MAX + 1))
    assert status_of(long_note) == 400
    with pytest.raises(HfHubHTTPError) as long_update:
        client.update_collection_item(slug, item.item_object_id, note="n" * (NOTE_MAX + 1))
    assert status_of(long_update) == 400
    with pytest.raises(HfHubHTTPError) as far:
        client.update_collection_item(slug, item.item_object_id, position=5)
    assert status_of(far) == 400
    target = f"/api/collections/{slug}/items/{item.item_object_id}"
    assert exchange(hub.url, json_request("PATCH", target, {"colour": "red"})).status == 400
    assert exchange(hub.url, json_request("PATCH", f"/api/collections/{slug}", {"theme": "neon"})).status == 400
    missing = f"/api/collections/{slug}/items/{'0' * 24}"
    assert exchange(hub.url, request("DELETE", missing, token=ALICE)).status == 404
    assert [(i.item_id, i.note) for i in client.get_collection(slug).items] == [(repos[0], "short")]
    assert len(hub.log) >= 5 and all(ALICE not in line for line in hub.log)
