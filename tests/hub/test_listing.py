"""The list endpoints `hf models ls` and `list_models`/`list_datasets` use: filters, order, pages, privacy, and
queries no client would send.

Before: `GET /api/models` was a 404 (`no route`), so `hf models ls --author demo` failed.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from huggingface_hub import DatasetInfo, HfApi, ModelInfo
from huggingface_hub.errors import HfHubHTTPError

from hubpub.hub import HubServer, Identity, Limits
from tests.hub.harness import ALICE, BOB, TOKENS, Connection, Hub, exchange, request

DEMO = "hf_demo_token_0123456789abcdef"
HF = Path(sys.executable).parent / "hf"
PUBLIC_DEMO = ["demo/llama-w4a16", "demo/llama-w8a8"]
SECRET = "demo/secret-w4a16"


def card(tags: list[str], extra: str = "") -> bytes:
    return f"---\ntags: {json.dumps(tags)}\nlicense: apache-2.0\n{extra}---\n# card\n".encode()


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Three demo models (one private), alice's model and a demo dataset, served two repos to a page.

    One shelf for the module: no test here writes to it.
    """
    tmp_path = tmp_path_factory.mktemp("listing")
    log: list[str] = []
    tokens = {**TOKENS, DEMO: Identity(name="demo", writable=frozenset())}
    limits = Limits(socket_timeout=5.0, linger_seconds=0.5, list_page=2)
    with HubServer(tmp_path / "store", tokens=tokens, limits=limits, log=log.append) as server:
        demo, alice = HfApi(endpoint=server.url, token=DEMO), HfApi(endpoint=server.url, token=ALICE)
        for repo_id, tags in [
            ("demo/llama-w4a16", ["quantized", "w4a16"]),
            ("demo/llama-w8a8", ["quantized", "w8a8"]),
            (SECRET, ["quantized", "w4a16"]),
        ]:
            demo.create_repo(repo_id, private=repo_id == SECRET)
            extra = "pipeline_tag: text-generation\n" if repo_id.endswith("w8a8") else ""
            demo.upload_file(path_or_fileobj=card(tags, extra), path_in_repo="README.md", repo_id=repo_id)
        alice.create_repo("alice/llama-w4a16")
        alice.upload_file(path_or_fileobj=card(["w4a16"]), path_in_repo="README.md", repo_id="alice/llama-w4a16")
        demo.create_repo("demo/calibration", repo_type="dataset")
        yield Hub(server, tmp_path / "store", log)


def raw_list(shelf: Hub, query: str) -> list[dict[str, object]]:
    reply = exchange(shelf.url, request("GET", f"/api/models?{query}"))
    assert reply.status == 200, reply.body
    items: list[dict[str, object]] = json.loads(reply.body)
    return items


def ids(items: Iterable[ModelInfo | DatasetInfo]) -> list[str]:
    return [item.id for item in items]


def test_list_models_filters_like_the_hub(shelf: Hub) -> None:
    api = HfApi(endpoint=shelf.url, token=False)
    assert ids(api.list_models(author="demo")) == PUBLIC_DEMO
    assert ids(api.list_models(author="DEMO", search="W8")) == ["demo/llama-w8a8"]
    assert ids(api.list_models(filter="w4a16")) == ["alice/llama-w4a16", "demo/llama-w4a16"]
    assert ids(api.list_models(filter=["quantized", "license:apache-2.0"])) == PUBLIC_DEMO
    assert ids(api.list_models(pipeline_tag="text-generation")) == ["demo/llama-w8a8"]
    assert ids(api.list_models(search="no-such-model")) == []
    assert ids(api.list_datasets(author="demo")) == ["demo/calibration"]
    assert api.model_info("demo/llama-w8a8").tags == ["quantized", "w8a8", "text-generation", "license:apache-2.0"]


def test_sort_limit_and_the_fields_a_listing_carries(shelf: Hub) -> None:
    api = HfApi(endpoint=shelf.url, token=False)
    # Repos made within one second tie on createdAt; ties go by id, in the same direction.
    newest_first = [(info.created_at, info.id) for info in api.list_models(sort="created_at")]
    assert len(newest_first) == 3 and newest_first == sorted(newest_first, reverse=True)
    oldest_first = [item["id"] for item in raw_list(shelf, "sort=createdAt&direction=1")]
    assert oldest_first == [repo_id for _, repo_id in reversed(newest_first)][:2]  # one page
    assert ids(api.list_models(sort="likes", limit=1)) == ["demo/llama-w8a8"]
    plain = next(iter(api.list_models(author="alice")))
    assert plain.sha is not None and plain.private is False and plain.siblings is None and plain.card_data is None
    full = next(iter(api.list_models(author="alice", full=True)))
    assert [sibling.rfilename for sibling in full.siblings or []] == [".gitattributes", "README.md"]
    expanded = next(iter(api.list_models(author="alice", expand=["tags"])))
    assert (expanded.tags, expanded.sha, expanded.author) == (["w4a16", "license:apache-2.0"], None, None)


def test_pages_follow_the_link_header_with_a_cursor(shelf: Hub) -> None:
    before = len(shelf.server.requests)
    everything = ids(HfApi(endpoint=shelf.url, token=DEMO).list_models())
    assert everything == ["alice/llama-w4a16", *PUBLIC_DEMO, SECRET]
    assert list(shelf.server.requests)[before:] == [("GET", "list_repos", 200)] * 2
    with Connection(shelf.url) as connection:
        connection.send(request("GET", "/api/models?limit=1&sort=createdAt"))
        first = connection.reply()
        link = first.headers["link"]
        # The harness sends `Host: 127.0.0.1`, without the port: not a name of this Hub, so the link names its URL.
        assert link.startswith(f"<{shelf.url}/api/models?") and link.endswith('>; rel="next"')
        cursor = link.split("cursor=", 1)[1].split(">", 1)[0]
        connection.send(request("GET", f"/api/models?limit=1&sort=createdAt&direction=1&cursor={cursor}"))
        other_order = connection.reply()
    assert other_order.status == 400 and "another order" in other_order.headers["x-error-message"]


@pytest.mark.parametrize("token", [None, BOB])
def test_private_repos_stay_out_of_listings_without_access(shelf: Hub, token: str | None) -> None:
    for target in ["/api/models", "/api/models?author=demo", "/api/models?search=secret", "/api/models?limit=1000"]:
        with Connection(shelf.url) as connection:
            body, cursor_target = b"", target
            while cursor_target:
                connection.send(request("GET", cursor_target, token=token))
                reply = connection.reply()
                assert reply.status == 200
                body += reply.body
                link = reply.headers.get("link")
                cursor_target = link[1 : link.index(">")].removeprefix(shelf.url) if link else ""
        assert b"secret" not in body
        assert (b'"demo/llama-w4a16"' in body) == ("search" not in target)


def test_a_token_sees_the_private_repos_it_may_read(shelf: Hub) -> None:
    listed = {info.id: info.private for info in HfApi(endpoint=shelf.url, token=DEMO).list_models(author="demo")}
    assert listed == {"demo/llama-w4a16": False, "demo/llama-w8a8": False, SECRET: True}
    assert ids(HfApi(endpoint=shelf.url, token=ALICE).list_models(author="demo")) == PUBLIC_DEMO
    with pytest.raises(HfHubHTTPError) as refused:
        list(HfApi(endpoint=shelf.url, token="hf_not_a_token_0123456789").list_models())
    assert refused.value.response.status_code == 401


def hf_models_ls(shelf: Hub, token: str | None) -> list[dict[str, object]]:
    environment = {key: value for key, value in os.environ.items() if key != "HF_TOKEN"}
    environment.update(HF_ENDPOINT=shelf.url, NO_PROXY="127.0.0.1", **({"HF_TOKEN": token} if token else {}))
    result = subprocess.run(
        [str(HF), "models", "ls", "--author", "demo", "--format", "json"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, object]] = json.loads(result.stdout)
    return listed


def test_hf_models_ls_lists_exactly_the_repos_the_caller_may_see(shelf: Hub) -> None:
    assert [model["id"] for model in hf_models_ls(shelf, None)] == PUBLIC_DEMO
    assert [(model["id"], model["private"]) for model in hf_models_ls(shelf, DEMO)] == [
        ("demo/llama-w4a16", False),
        ("demo/llama-w8a8", False),
        (SECRET, True),
    ]


def foreign_cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=-1", "Invalid limit"),
        ("limit=abc", "Invalid limit"),
        ("limit=99999999999", "Invalid limit"),
        ("limit=1&limit=2", "limit is given 2 times"),
        ("author=a&author=b", "author is given 2 times"),
        ("author=..%2Fetc", "Invalid author"),
        ("sort=bogus", "Invalid sort"),
        ("sort=__class__", "Invalid sort"),
        ("direction=up", "Invalid direction"),
        ("full=maybe", "Invalid full"),
        ("search=%FF", "Invalid query string"),
        ("search=" + "x" * 300, "longer than 256"),
        ("&".join(["filter=a"] * 40), "filter is given 40 times"),
        ("&".join(f"f{index}=1" for index in range(101)), "Invalid query string"),
        ("apps=vllm", "does not support the query parameter 'apps'"),
        ("expand=safetensors", "cannot expand 'safetensors'"),
        ("expand=tags&full=true", "expand cannot be combined"),
        ("cursor=not-base64!", "Invalid cursor"),
        ("cursor=" + foreign_cursor({"a": 1}), "Invalid cursor"),
        ("cursor=" + foreign_cursor(["id", 1, 5, "demo/x"]), "Invalid cursor"),
        ("sort=likes&cursor=" + foreign_cursor(["likes", -1, "0", "demo/x"]), "Invalid cursor"),
        ("cursor=" + foreign_cursor(["likes", -1, 0, "demo/x"]), "another order"),
    ],
)
def test_hostile_list_queries_get_a_clear_400_on_a_live_connection(shelf: Hub, query: str, message: str) -> None:
    with Connection(shelf.url) as connection:
        connection.send(request("GET", f"/api/models?{query}"))
        refused = connection.reply()
        connection.send(request("GET", "/api/models?author=demo"))
        after = connection.reply()
    assert refused.status == 400, refused.body
    assert message in refused.headers["x-error-message"]
    assert json.loads(refused.body)["error"] == refused.headers["x-error-message"]
    assert after.status == 200 and [item["id"] for item in json.loads(after.body)] == PUBLIC_DEMO


def test_hf_repos_ls_lists_the_callers_own_repos_with_their_storage(shelf: Hub) -> None:
    mine = {(repo.id, repo.type, repo.visibility) for repo in HfApi(endpoint=shelf.url, token=DEMO).list_user_repos()}
    assert mine == {
        ("demo/llama-w4a16", "model", "public"),
        ("demo/llama-w8a8", "model", "public"),
        (SECRET, "model", "private"),
        ("demo/calibration", "dataset", "public"),
    }
    alices = list(HfApi(endpoint=shelf.url, token=ALICE).list_user_repos())
    assert [repo.id for repo in alices] == ["alice/llama-w4a16"] and alices[0].storage > 0
    assert alices[0].storage_percent == 100
    refusals: list[tuple[str | bool, str | None, int]] = [(ALICE, "demo", 403), (False, None, 401)]
    for token, namespace, status in refusals:
        with pytest.raises(HfHubHTTPError) as refused:
            list(HfApi(endpoint=shelf.url, token=token).list_user_repos(namespace=namespace))
        assert refused.value.response.status_code == status and b"secret" not in refused.value.response.content
