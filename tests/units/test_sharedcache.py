"""The cache folder releases share: where it is, and that concurrent writers neither tear nor lose files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from hubpub.hashing import HashCache, sha256_file
from hubpub.sharedcache import CACHE_DIR_ENV, cache_dir, exclusive, write_atomic


def test_the_cache_folder_is_the_explicit_one_then_the_environment_then_the_workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    assert cache_dir(tmp_path / "work") == tmp_path / "work" / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "shared"))
    assert cache_dir(tmp_path / "work") == tmp_path / "shared"
    assert cache_dir(tmp_path / "work", tmp_path / "given") == tmp_path / "given"


def test_an_atomic_write_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "base-evaluation" / "key.json"
    write_atomic(target, "first")
    write_atomic(target, "second")
    assert target.read_text(encoding="utf-8") == "second"
    assert [path.name for path in target.parent.iterdir()] == ["key.json"]


def test_work_under_the_lock_runs_one_process_at_a_time(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0", encoding="utf-8")

    def increment() -> None:
        # Two separate opens of the lock file: flock keeps them apart even within one process.
        with exclusive(tmp_path / "counter.lock"):
            value = int(counter.read_text(encoding="utf-8"))
            time.sleep(0.01)
            counter.write_text(str(value + 1), encoding="utf-8")

    threads = [threading.Thread(target=increment) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text(encoding="utf-8") == "8"


def test_hash_caches_sharing_a_store_keep_each_others_entries(tmp_path: Path) -> None:
    store = tmp_path / "cache" / "sha256.json"
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"a")
    second.write_bytes(b"b")
    one, other = HashCache(store), HashCache(store)
    one.sha256(first)
    other.sha256(second)
    reloaded = HashCache(store)
    assert reloaded._known == {**one._known, **other._known}
    assert sorted(reloaded._known.values()) == sorted([sha256_file(first), sha256_file(second)])
