"""The family's Hub collection, kept by `push` and `republish --card-only` against the embedded Hub.

The releases are the demo family's real manifests (tests/cards/fixtures), staged beside a small README,
so publishing them runs no model: `push --no-roundtrip` commits and tags them, then the collection is
synced from what the Hub holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import Collection, HfApi

from hubpub import api
from hubpub.collection import sync_collection
from hubpub.hashing import sha256_file
from hubpub.hub import HubServer, Identity
from hubpub.hubclient import HubTarget
from hubpub.manifest import Manifest
from hubpub.pipeline import release_dir
from hubpub.spec import load_spec
from hubpub.stages.card import human_bytes

FIXTURES = Path(__file__).parent.parent / "cards" / "fixtures"
TOKEN = "hf_collection_token_0123456789"
BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
W4, W8, W8A16 = (f"demo/SmolLM2-135M-Instruct-{name}" for name in ("W4A16", "W8A8", "W8A16"))
FAMILY = f"""family: smollm2-135m-demo
base_model: {BASE}
license: apache-2.0
version: 0.1.0
calibration: {{dataset: demo/calibration-text}}
variants:
  - {{name: W4A16, scheme: W4A16, group_size: 64, repo_id: {W4}}}
  - {{name: W8A8, scheme: W8A8, repo_id: {W8}}}
"""
NEW_VARIANT = f"  - {{name: W8A16, scheme: W8A16, group_size: 64, repo_id: {W8A16}}}\n"
WRITES = ("POST", "PATCH", "DELETE")


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with HubServer(tmp_path / "hub", tokens={TOKEN: Identity(name="demo")}) as server:
        HfApi(endpoint=server.url, token=TOKEN).create_repo(BASE)
        yield server


def fixture(variant: str) -> Manifest:
    return Manifest.model_validate_json((FIXTURES / f"demo-{variant}.json").read_text(encoding="utf-8"))


def write_spec(folder: Path, text: str = FAMILY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "smollm2-135m.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


def stage(spec: Path, workdir: Path, manifest: Manifest) -> None:
    """A staged release as `release --no-push` leaves it: the manifest (of this spec file) and a card."""
    release = next(item for item in load_spec(spec).releases if item.repo_id == manifest.repo_id)
    staged = release_dir(workdir, release) / "staged"
    staged.mkdir(parents=True, exist_ok=True)
    (staged / "README.md").write_text(f"# {manifest.repo_id}\n", encoding="utf-8")
    manifest.model_copy(update={"spec_sha256": sha256_file(spec)}).write(staged)


def w8a16(spec: Path) -> Manifest:
    """The W8A8 fixture's measurements relabelled as a W8A16 variant, with that variant's recipe."""
    release = next(item for item in load_spec(spec).releases if item.variant == "W8A16")
    measured = fixture("W8A8")
    preflight = measured.stages["preflight"]
    grouped = preflight.model_copy(update={"metrics": {**preflight.metrics, "group_size": 64}})
    return measured.model_copy(
        update={
            "variant": "W8A16",
            "repo_id": W8A16,
            "recipe": release.recipe(),
            "release": {**measured.release, "scheme": "W8A16", "name": "W8A16", "repo_id": W8A16},
            "stages": {**measured.stages, "preflight": grouped},
        }
    )


def publish(spec: Path, workdir: Path, hub: HubServer, *manifests: Manifest) -> None:
    for manifest in manifests:
        stage(spec, workdir, manifest)
    api.push([spec], workdir=workdir, hub=hub.url, roundtrip=False)


def the_collection(hub: HubServer) -> Collection:
    client = HfApi(endpoint=hub.url, token=TOKEN)
    (listed,) = [found for found in client.list_collections(owner="demo") if found.title == "smollm2-135m-demo"]
    return client.get_collection(listed.slug)


def collection_writes(hub: HubServer) -> list[tuple[str, str]]:
    return [(method, route) for method, route, _ in hub.requests if route.startswith("collection") and method in WRITES]


def test_a_family_release_makes_its_collection_and_a_second_release_changes_nothing(
    hub: HubServer, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "specs")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))

    collection = the_collection(hub)
    assert collection.title == "smollm2-135m-demo"
    assert collection.description is not None and BASE in collection.description
    assert [(item.item_type, item.item_id) for item in collection.items] == [
        ("model", BASE),
        ("model", W4),
        ("model", W8),
    ]
    base_bytes = fixture("W4A16").stages["preflight"].metrics["checkpoint_bytes"]
    assert collection.items[0].note == f"The base model · {human_bytes(base_bytes)} checkpoint"
    for item, variant in zip(collection.items[1:], ["W4A16", "W8A8"], strict=True):
        manifest = fixture(variant)
        assert item.note is not None
        assert item.note.startswith(variant)
        assert f"{human_bytes(manifest.stages['quantize'].metrics['checkpoint_bytes'])} checkpoint" in item.note
        first_row = manifest.stages["evaluate"].metrics["rows"][0]
        assert f"recovery {first_row['task']} {first_row['metric']} {100 * first_row['recovery']:.1f}%" in item.note
        perplexity = next(row for row in manifest.stages["evaluate"].metrics["rows"] if not row["higher_is_better"])
        assert f"{perplexity['task']} {perplexity['metric']} ×{perplexity['quantized'] / perplexity['base']:.3f}" in (
            item.note
        )
    assert "(group size 64)" in (collection.items[1].note or "")

    writes = len(collection_writes(hub))
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    again = the_collection(hub)
    assert len(collection_writes(hub)) == writes
    assert again.last_updated == collection.last_updated
    assert [(item.item_object_id, item.note) for item in again.items] == [
        (item.item_object_id, item.note) for item in collection.items
    ]
    assert len(list(HfApi(endpoint=hub.url, token=TOKEN).list_collections(owner="demo"))) == 1


def test_republish_card_only_adds_a_new_variant_in_spec_order_and_refreshes_notes(
    hub: HubServer, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "specs")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    slug = the_collection(hub).slug
    client = HfApi(endpoint=hub.url, token=TOKEN)
    w4_item = the_collection(hub).items[1]
    client.update_collection_item(slug, w4_item.item_object_id, note="stale facts")

    # The new variant sits between the others in the spec, and reaches the Hub without hubpub (no sync).
    grown_text = FAMILY.replace("  - {name: W8A8", NEW_VARIANT + "  - {name: W8A8")
    grown = write_spec(tmp_path / "grown", grown_text)
    staged_new = tmp_path / "new-variant"
    staged_new.mkdir()
    w8a16(grown).write(staged_new)
    (staged_new / "README.md").write_text("# W8A16\n", encoding="utf-8")
    client.create_repo(W8A16)
    client.upload_folder(repo_id=W8A16, folder_path=staged_new)

    results = api.republish([grown], card_only=True, hub=hub.url, jobs=1)

    assert {result.repo_id: result.status for result in results}.keys() == {W4, W8, W8A16}
    collection = the_collection(hub)
    assert collection.slug == slug
    assert [item.item_id for item in collection.items] == [BASE, W4, W8A16, W8]
    assert collection.items[1].note is not None and collection.items[1].note.startswith("W4A16")
    new_note = collection.items[2].note or ""
    assert new_note.startswith("W8A16 (group size")
    assert human_bytes(fixture("W8A8").stages["quantize"].metrics["checkpoint_bytes"]) in new_note


def test_a_variant_gone_from_the_spec_is_reported_and_deleted_only_with_prune(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = write_spec(tmp_path / "specs")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    client = HfApi(endpoint=hub.url, token=TOKEN)
    user_slug = client.create_collection("Other things", namespace="demo").slug
    client.create_repo("demo/unrelated")
    slug = the_collection(hub).slug
    client.add_collection_item(slug, "demo/unrelated", "model", note="mine")
    client.add_collection_item(slug, user_slug, "collection")
    target = HubTarget("test", hub.url, TOKEN)

    shrunk = FAMILY.replace(f"  - {{name: W8A8, scheme: W8A8, repo_id: {W8}}}\n", "")
    with caplog.at_level(logging.INFO, logger="hubpub"):
        kept = sync_collection(target, load_spec(write_spec(tmp_path / "shrunk", shrunk)).releases)
    assert kept is not None and (kept.not_in_spec, kept.pruned, kept.added, kept.moved) == ([W8], [], [], [])
    assert kept.described and "W8A8" not in (the_collection(hub).description or "")
    assert W8 in [item.item_id for item in the_collection(hub).items]
    assert any(W8 in record.getMessage() and "prune" in record.getMessage() for record in caplog.records)

    pruned = sync_collection(
        target, load_spec(write_spec(tmp_path / "pruned", shrunk + "collection: {prune: true}\n")).releases
    )
    assert pruned is not None and (pruned.status, pruned.pruned) == ("updated", [W8])
    assert [item.item_id for item in the_collection(hub).items] == [BASE, W4, "demo/unrelated", user_slug]


def test_the_spec_can_name_an_existing_collection(hub: HubServer, tmp_path: Path) -> None:
    client = HfApi(endpoint=hub.url, token=TOKEN)
    existing = client.create_collection("Our quantized models", namespace="demo", description="kept as it is")
    spec = write_spec(tmp_path / "specs", FAMILY + f"collection: {{slug: {existing.slug}}}\n")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    (only,) = list(client.list_collections(owner="demo"))
    assert only.slug == existing.slug
    collection = client.get_collection(existing.slug)
    assert collection.description == "kept as it is"
    assert [item.item_id for item in collection.items] == [BASE, W4, W8]


def test_a_base_missing_from_the_hub_is_left_out_and_said(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = write_spec(tmp_path / "specs", FAMILY.replace(BASE, "someone/absent-base"))
    for variant in ("W4A16", "W8A8"):
        stage(spec, tmp_path / "work", fixture(variant).model_copy(update={"base_model": "someone/absent-base"}))
    with caplog.at_level(logging.INFO, logger="hubpub"):
        api.push([spec], workdir=tmp_path / "work", hub=hub.url, roundtrip=False)
    assert [item.item_id for item in the_collection(hub).items] == [W4, W8]
    assert any("someone/absent-base is not on this Hub" in record.getMessage() for record in caplog.records)


def test_dry_runs_and_families_without_a_collection_touch_none(hub: HubServer, tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "specs")
    for variant in ("W4A16", "W8A8"):
        stage(spec, tmp_path / "work", fixture(variant))
    api.push([spec], workdir=tmp_path / "work", hub=hub.url, roundtrip=False, dry_run=True)
    api.republish([spec], card_only=True, hub=hub.url, dry_run=True)
    assert not [route for _, route, _ in hub.requests if route.startswith("collection")]

    off = write_spec(tmp_path / "off", FAMILY + "collection: {enabled: false}\n")
    for variant in ("W4A16", "W8A8"):
        stage(off, tmp_path / "work-off", fixture(variant))
    api.push([off], workdir=tmp_path / "work-off", hub=hub.url, roundtrip=False)
    assert HfApi(endpoint=hub.url, token=TOKEN).model_info(W4).sha is not None
    assert not [route for _, route, _ in hub.requests if route.startswith("collection")]


def test_a_variant_published_private_is_left_out_of_the_public_collection_and_said(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private_w8 = FAMILY.replace(f"repo_id: {W8}}}", f"repo_id: {W8}, push: {{private: true}}}}")
    spec = write_spec(tmp_path / "specs", private_w8)
    with caplog.at_level(logging.INFO, logger="hubpub"):
        publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))

    client = HfApi(endpoint=hub.url, token=TOKEN)
    assert client.model_info(W8).private and not client.model_info(W4).private
    collection = the_collection(hub)
    assert not collection.private
    assert [item.item_id for item in collection.items] == [BASE, W4], "its owner's own view: never added"
    anonymous = HfApi(endpoint=hub.url, token=False).get_collection(collection.slug)
    assert [item.item_id for item in anonymous.items] == [BASE, W4]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any(W8 in message and "left out of" in message and "collection is public" in message for message in warnings)

    target = HubTarget("test", hub.url, TOKEN)
    again = sync_collection(target, load_spec(spec).releases)
    assert again is not None
    assert (again.status, again.left_out, again.withdrawn) == (
        "unchanged",
        {W8: "private, and the collection is public"},
        [],
    )


def test_a_variant_made_private_after_it_was_listed_is_removed_from_the_public_collection(
    hub: HubServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = write_spec(tmp_path / "specs")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    assert [item.item_id for item in the_collection(hub).items] == [BASE, W4, W8]
    client = HfApi(endpoint=hub.url, token=TOKEN)
    client.update_repo_settings(W8, private=True)

    with caplog.at_level(logging.INFO, logger="hubpub"):
        synced = sync_collection(HubTarget("test", hub.url, TOKEN), load_spec(spec).releases)
    assert synced is not None
    assert (synced.status, synced.withdrawn, synced.left_out) == (
        "updated",
        [W8],
        {W8: "private, and the collection is public"},
    )
    assert [item.item_id for item in the_collection(hub).items] == [BASE, W4], "deleted, not only hidden"
    assert any(f"{W8} removed from" in record.getMessage() for record in caplog.records)


def test_a_variant_gone_from_the_spec_and_made_private_is_removed_even_without_prune(
    hub: HubServer, tmp_path: Path
) -> None:
    spec = write_spec(tmp_path / "specs")
    publish(spec, tmp_path / "work", hub, fixture("W4A16"), fixture("W8A8"))
    HfApi(endpoint=hub.url, token=TOKEN).update_repo_settings(W8, private=True)
    shrunk = FAMILY.replace(f"  - {{name: W8A8, scheme: W8A8, repo_id: {W8}}}\n", "")
    synced = sync_collection(
        HubTarget("test", hub.url, TOKEN), load_spec(write_spec(tmp_path / "shrunk", shrunk)).releases
    )
    assert synced is not None and (synced.withdrawn, synced.not_in_spec, synced.pruned) == ([W8], [], [])
    assert [item.item_id for item in the_collection(hub).items] == [BASE, W4]


def test_a_private_collection_holds_private_variants_of_its_own_namespace_only(hub: HubServer, tmp_path: Path) -> None:
    outsider = "other/SmolLM2-135M-Instruct-W8A8"
    text = FAMILY.replace(f"repo_id: {W8}}}", f"repo_id: {outsider}}}") + "collection: {private: true}\n"
    spec = write_spec(tmp_path / "specs", text)
    client = HfApi(endpoint=hub.url, token=TOKEN)
    for repo_id, variant in ((W4, "W4A16"), (outsider, "W8A8")):
        client.create_repo(repo_id, private=True)
        folder = tmp_path / "upload" / variant
        folder.mkdir(parents=True)
        fixture(variant).model_copy(update={"repo_id": repo_id}).write(folder)
        client.upload_folder(repo_id=repo_id, folder_path=folder)

    synced = sync_collection(HubTarget("test", hub.url, TOKEN), load_spec(spec).releases)
    assert synced is not None and synced.status == "created"
    assert synced.left_out == {outsider: "private, and the collection is of another namespace (demo)"}
    collection = the_collection(hub)
    assert collection.private and [item.item_id for item in collection.items] == [BASE, W4]
    assert list(HfApi(endpoint=hub.url, token=False).list_collections(owner="demo")) == []
