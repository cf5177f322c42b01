"""A real embedded Hub on 127.0.0.1 with two users, alice and bob, each writing only their own namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from hubpub.hub import HubServer, Limits
from tests.hub.demo_family import publish_demo_family
from tests.hub.harness import TOKENS, Hub

# No example database in the checkout; every property test sets its own bounded number of examples.
settings.register_profile("hubpub", database=None, deadline=None)
settings.load_profile("hubpub")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    log: list[str] = []
    limits = Limits(socket_timeout=5.0, linger_seconds=0.5)
    with HubServer(tmp_path / "store", tokens=TOKENS, limits=limits, log=log.append) as server:
        yield Hub(server, tmp_path / "store", log)


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hub store holding the demo family, a private repo and a hostile card (tests/hub/demo_family.py)."""
    store = tmp_path_factory.mktemp("demo-hub") / "store"
    publish_demo_family(store)
    return store
