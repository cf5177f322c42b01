"""Items 7 and 8: one store, several processes, and kills at any moment; nothing is lost or left half-made.

Before: two processes serving one store (`hub serve` beside `release --hub local`) both got 200 on
the same parent, a kill inside repo creation left a repo that answered 409 to create and 404 to
every read, and a killed LFS upload left a `.partial` file that nothing removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from hubpub.hub import HubServer, HubStore
from hubpub.hub.store import Repo
from tests.hub.harness import ALICE, TOKENS, Connection, Hub, add_file, commit_body, exchange, json_request, request

SERVE = """
import sys
from pathlib import Path
from hubpub.hub import HubServer, Identity
server = HubServer(Path(sys.argv[1]), tokens={sys.argv[2]: Identity(name="alice")})
print(server.url, flush=True)
server.start()
sys.stdin.read()
"""


StartServer = Callable[[Path], tuple["subprocess.Popen[str]", str]]


@pytest.fixture
def serve_process() -> Iterator[StartServer]:
    """Start `HubServer`s in their own processes; each answers its URL, and is killed at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(root: Path) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(root), ALICE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


def race(urls: list[str], parent: str, round_number: int) -> list[int]:
    """Commit on `parent` through every URL at once; the answers' statuses."""
    barrier = threading.Barrier(len(urls))
    statuses: list[int] = []

    def one(index: int, url: str) -> None:
        body = commit_body(add_file(f"r{round_number}-{index}.txt", b"x"), parent=parent)
        raw = request("POST", "/api/models/alice/repo/commit/main", body, token=ALICE)
        with Connection(url) as connection:
            barrier.wait(timeout=10)
            connection.send(raw)
            statuses.append(connection.reply().status)

    threads = [threading.Thread(target=one, args=(index, url)) for index, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(statuses)


def test_two_processes_on_one_store_never_both_commit_on_the_same_parent(
    tmp_path: Path, serve_process: StartServer
) -> None:
    root = tmp_path / "store"
    _, first = serve_process(root)
    _, second = serve_process(root)
    api = HfApi(endpoint=first, token=ALICE)
    api.create_repo("alice/repo")
    for round_number in range(10):
        parent = str(api.model_info("alice/repo").sha)
        assert race([first, second], parent, round_number) == [200, 412], f"round {round_number}"
    assert len(HfApi(endpoint=second, token=ALICE).list_repo_commits("alice/repo")) == 11


def test_two_racing_commits_on_one_server_one_wins(hub: Hub) -> None:
    hub.api().create_repo("alice/repo")
    for round_number in range(5):
        parent = str(hub.api().model_info("alice/repo").sha)
        assert race([hub.url, hub.url], parent, round_number) == [200, 412]


KILL_AFTER_RENAMES = """
import os, signal, sys
from pathlib import Path
from hubpub.hub.store import HubStore, Repo
store = HubStore(Path(sys.argv[1]))
limit, renames = int(sys.argv[2]), 0

def counted(real):
    def wrapper(*args, **kwargs):
        global renames
        result = real(*args, **kwargs)
        renames += 1
        if renames == limit:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapper

os.replace, os.rename = counted(os.replace), counted(os.rename)
exec(sys.argv[3])
"""


def killed_after(root: Path, renames: int, action: str) -> bool:
    """Run `action` on a store in another process, SIGKILLed after its n-th rename; True when it was killed."""
    result = subprocess.run([sys.executable, "-c", KILL_AFTER_RENAMES, str(root), str(renames), action], check=False)
    return result.returncode == -signal.SIGKILL


CREATE = "store.create_repo(Repo('model', 'alice', 'repo'), private=False, author='alice')"


def test_a_kill_at_any_point_of_repo_creation_leaves_no_half_made_repo(tmp_path: Path) -> None:
    for renames in range(1, 30):
        root = tmp_path / f"store-{renames}"
        killed = killed_after(root, renames, CREATE)
        with HubServer(root, tokens=TOKENS) as server:
            api = HfApi(endpoint=server.url, token=ALICE)
            try:
                api.create_repo("alice/repo")
            except HfHubHTTPError as exc:
                assert exc.response.status_code == 409
            assert api.list_repo_files("alice/repo") == [".gitattributes"], f"killed after rename {renames}"
            assert list((root / "tmp").iterdir()) == []
        if not killed:
            break
    else:
        pytest.fail("repo creation never finished")


COMMIT = (
    "from hubpub.hub.store import NewCommit, Operation\n"
    "store.commit(Repo('model', 'alice', 'repo'), NewCommit('main', (Operation('file', 'a.txt', b'new'),"
    " Operation('file', 'b/c.txt', b'more')), title='t', message='', author='alice'))"
)


def test_a_kill_at_any_point_of_a_commit_leaves_the_old_or_the_new_commit(tmp_path: Path) -> None:
    for renames in range(1, 30):
        root = tmp_path / f"store-{renames}"
        HubStore(root).create_repo(Repo("model", "alice", "repo"), private=False, author="alice")
        killed = killed_after(root, renames, COMMIT)
        with HubServer(root, tokens=TOKENS) as server:
            files = HfApi(endpoint=server.url, token=ALICE).list_repo_files("alice/repo")
            assert files in ([".gitattributes"], [".gitattributes", "a.txt", "b/c.txt"]), renames
        if not killed:
            break
    else:
        pytest.fail("the commit never finished")


def start_upload(hub_url: str, content: bytes) -> tuple[Connection, bytes]:
    """Open an LFS upload and send half of it; the connection and the half not yet sent."""
    api = HfApi(endpoint=hub_url, token=ALICE)
    api.create_repo("alice/repo", exist_ok=True)
    oid = hashlib.sha256(content).hexdigest()
    body = {"operation": "upload", "transfers": ["basic"], "objects": [{"oid": oid, "size": len(content)}]}
    reply = exchange(hub_url, json_request("POST", "/alice/repo.git/info/lfs/objects/batch", body))
    href = urlsplit(json.loads(reply.body)["objects"][0]["actions"]["upload"]["href"])
    connection = Connection(hub_url)
    connection.send(
        request("PUT", f"{href.path}?{href.query}", content[: len(content) // 2]).replace(
            b"Content-Length: %d" % (len(content) // 2), b"Content-Length: %d" % len(content)
        )
    )
    return connection, content[len(content) // 2 :]


def partial_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if "partial" in path.name or path.parent.name == "tmp"]


def wait_for(condition: Callable[[], object], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_partial_upload_left_by_a_killed_server_is_removed_at_the_next_open(
    tmp_path: Path, serve_process: StartServer
) -> None:
    root = tmp_path / "store"
    process, url = serve_process(root)
    connection, _ = start_upload(url, os.urandom(1 << 20))
    wait_for(lambda: partial_files(root))
    assert partial_files(root), "the upload never started writing"
    process.kill()
    process.wait(timeout=10)
    connection.sock.close()
    HubStore(root).close()
    assert partial_files(root) == []


def test_a_partial_upload_of_a_live_process_survives_another_process_opening_the_store(hub: Hub) -> None:
    content = os.urandom(1 << 20)
    connection, rest = start_upload(hub.url, content)
    wait_for(lambda: partial_files(hub.root))
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from hubpub.hub import HubStore; HubStore(Path({str(hub.root)!r}))",
        ],
        check=True,
    )
    assert partial_files(hub.root)
    with connection:
        connection.send(rest)
        assert connection.reply().status == 200
    assert partial_files(hub.root) == []


def test_a_layout_1_store_moves_each_lfs_object_into_the_repos_that_name_it(tmp_path: Path) -> None:
    root = tmp_path / "store"
    weights = os.urandom(1000)
    sha256 = hashlib.sha256(weights).hexdigest()
    repo = root / "repos" / "models" / "alice" / "old"
    (repo / "commits").mkdir(parents=True)
    (repo / "blobs").mkdir()
    (root / "lfs").mkdir()
    (root / "lfs" / sha256).write_bytes(weights)
    (root / "lfs" / f"{'1' * 64}.140.partial").write_bytes(b"killed upload")
    tree = {"w.safetensors": {"oid": "2" * 40, "size": len(weights), "lfs": sha256}}
    commit = {"id": "3" * 40, "parent": None, "tree": tree, "title": "t", "message": "", "author": "alice"}
    (repo / "commits" / f"{'3' * 40}.json").write_text(json.dumps({**commit, "date": "2026-01-01T00:00:00.000Z"}))
    (repo / "refs.json").write_text(json.dumps({"branches": {"main": "3" * 40}, "tags": {}}))
    (repo / "meta.json").write_text(json.dumps({"private": False, "createdAt": "2026-01-01T00:00:00.000Z"}))
    with HubServer(root, tokens=TOKENS) as server:
        downloaded = HfApi(endpoint=server.url, token=ALICE).hf_hub_download("alice/old", "w.safetensors")
        assert Path(downloaded).read_bytes() == weights
    assert not (root / "lfs").exists() and partial_files(root) == []
    assert json.loads((root / "store.json").read_text()) == {"layout": 2}


def test_a_store_from_a_newer_hubpub_is_refused(tmp_path: Path) -> None:
    from hubpub.hub import HubConfigError

    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "store.json").write_text('{"layout": 99}')
    with pytest.raises(HubConfigError, match="newer"):
        HubStore(tmp_path / "store")
