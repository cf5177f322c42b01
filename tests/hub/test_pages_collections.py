"""Collections on the embedded Hub's web pages: listed on the index, each with its items in order, escaped."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubpub.hub import HubServer
from tests.hub.demo_family import BASE_MODEL, DEMO_TOKEN, EVE_TOKEN, PRIVATE, TOKENS, W4A16, W8A8
from tests.hub.test_pages import Elements, fetch


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, demo_store: Path) -> Iterator[HubServer]:
    store = tmp_path_factory.mktemp("collections-hub") / "store"
    shutil.copytree(demo_store, store)  # collections are added here, not to the store other modules share
    with HubServer(store, tokens=TOKENS) as server:
        yield server


def test_a_family_collection_is_on_the_index_and_its_page_lists_its_items_in_order(hub: HubServer) -> None:
    api = HfApi(endpoint=hub.url, token=DEMO_TOKEN)
    family = api.create_collection("SmolLM2 135M demo", description="Every variant", exists_ok=True)
    for repo, note in ((W8A8, "W8A8 · <script>alert(1)</script>"), (W4A16, "W4A16 · 116.7 MB")):
        api.add_collection_item(family.slug, repo, "model", note=note, exists_ok=True)
    hidden = api.create_collection("Unreleased work", private=True, exists_ok=True)
    api.add_collection_item(hidden.slug, PRIVATE, "model", exists_ok=True)

    index = fetch(hub, "/")
    assert f'href="/collections/{family.slug}"' in index.text
    assert "Unreleased work" not in index.text and hidden.slug not in index.text
    page = fetch(hub, f"/collections/{family.slug}")
    assert page.status == 200
    links = [href for href in Elements(page.text).hrefs() if href.startswith("/demo/")]
    assert links == [f"/{W8A8}", f"/{W4A16}"]
    assert "<script>alert(1)</script>" not in page.text
    assert "W8A8 · &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "W4A16 · 116.7 MB" in page.text
    assert BASE_MODEL not in page.text

    assert fetch(hub, f"/collections/{hidden.slug}").status == 404
    owner = fetch(hub, f"/collections/{hidden.slug}", headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert owner.status == 200 and f'href="/{PRIVATE}"' in owner.text
    assert "Unreleased work" in fetch(hub, "/", headers={"Authorization": f"Bearer {DEMO_TOKEN}"}).text


@pytest.mark.parametrize(
    "path", ["/collections/demo/not-a-slug", "/collections/..%2F..%2Fetc/x-0123456789abcdef01234567"]
)
def test_a_malformed_collection_address_is_refused(hub: HubServer, path: str) -> None:
    assert fetch(hub, path).status in (400, 404)


def test_a_private_repo_in_a_public_collection_shows_on_its_page_only_to_its_namespace(hub: HubServer) -> None:
    demo = HfApi(endpoint=hub.url, token=DEMO_TOKEN)
    shelf = demo.create_collection("Demo shelf", exists_ok=True)
    demo.add_collection_item(shelf.slug, W4A16, "model", note="released", exists_ok=True)
    demo.add_collection_item(shelf.slug, PRIVATE, "model", note="secret plans for W2", exists_ok=True)

    owner = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    for headers in ({}, {"Authorization": f"Bearer {EVE_TOKEN}"}):
        page = fetch(hub, f"/collections/{shelf.slug}", headers=headers)
        assert page.status == 200 and f'href="/{W4A16}"' in page.text
        assert PRIVATE not in page.text and "secret plans" not in page.text
        index = fetch(hub, "/", headers=headers).text
        assert f"<span>{shelf.slug}</span><span>1 items</span>" in index and PRIVATE not in index
    page = fetch(hub, f"/collections/{shelf.slug}", headers=owner)
    assert f'href="/{PRIVATE}"' in page.text and "secret plans for W2" in page.text
    assert f"<span>{shelf.slug}</span><span>2 items</span>" in fetch(hub, "/", headers=owner).text
