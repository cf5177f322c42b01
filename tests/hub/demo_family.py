"""The demo family as the web pages' tests see it: published to an embedded Hub with the real huggingface_hub
client, with the cards and manifests hubpub rendered for it (the golden files of tests/cards), a private
repo, and a repo whose card tries every way to run a script."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

from hubpub.hub import HubServer, Identity

CARDS = Path(__file__).parent.parent / "cards"
DEMO_TOKEN = "hf_demo_pages_token_0123456789"
EVE_TOKEN = "hf_eve_pages_token_0123456789"
TOKENS = {
    DEMO_TOKEN: Identity(name="demo", writable=frozenset()),
    EVE_TOKEN: Identity(name="eve", writable=frozenset()),
}
W4A16 = "demo/SmolLM2-135M-Instruct-W4A16"
W8A8 = "demo/SmolLM2-135M-Instruct-W8A8"
PRIVATE = "demo/unreleased-W4A16"
HOSTILE = "eve/hostile-card"
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
PWNED = "data-pwned"
"""The attribute a script in the hostile card would set on <body> if it ran."""
HOSTILE_CARD = f"""---
license: mit
tags: [<script>alert('tag')</script>]
base_model: "javascript:alert('base')"
model-index:
- name: hostile
  results:
  - task: {{type: text-generation}}
    dataset: {{name: "<img src=x onerror=alert(1)>", type: x}}
    metrics: [{{type: acc, value: 0.5}}]
---
# A card that tries to run scripts

<script>document.body.setAttribute('{PWNED}', 'script tag')</script>

<img src="x" onerror="document.body.setAttribute('{PWNED}', 'onerror')">

[a javascript link](javascript:document.body.setAttribute('{PWNED}','javascript link'))

[an entity-encoded javascript link](&#106;avascript:document.body.setAttribute('{PWNED}','entity link'))

[a data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)

<a href="javascript:document.body.setAttribute('{PWNED}','raw link')">a raw HTML link</a>

| column | payload |
|---|---|
| <script>document.body.setAttribute('{PWNED}','cell')</script> | [cell link](javascript:alert(1)) |

```html"><script>document.body.setAttribute('{PWNED}','fence')</script>
<script>alert(1)</script>
```
"""


def publish_demo_family(store: Path) -> None:
    """Fill a Hub store: the two demo variants (tagged v0.1.0), a private variant, and eve's hostile card."""
    with HubServer(store, tokens=TOKENS) as server:
        demo = HfApi(endpoint=server.url, token=DEMO_TOKEN)
        for variant, repo_id in (("W4A16", W4A16), ("W8A8", W8A8)):
            demo.create_repo(repo_id)
            demo.create_commit(
                repo_id,
                [
                    _add("README.md", (CARDS / "golden" / f"demo-{variant}.md").read_bytes()),
                    _add("hubpub-manifest.json", (CARDS / "fixtures" / f"demo-{variant}.json").read_bytes()),
                    _add("config.json", json.dumps({"architectures": ["LlamaForCausalLM"]}).encode()),
                    _add("model.safetensors", bytes(range(256)) * 64),
                ],
                commit_message=f"Release {variant} 0.1.0",
            )
            demo.create_tag(repo_id, tag="v0.1.0")
        demo.create_repo(PRIVATE, private=True)
        demo.upload_file(
            path_or_fileobj=b"---\nlicense: apache-2.0\n---\n# Not released yet\n\nA secret card.\n",
            path_in_repo="README.md",
            repo_id=PRIVATE,
        )
        eve = HfApi(endpoint=server.url, token=EVE_TOKEN)
        eve.create_repo(HOSTILE)
        eve.upload_file(path_or_fileobj=HOSTILE_CARD.encode(), path_in_repo="README.md", repo_id=HOSTILE)


def _add(path: str, content: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)
