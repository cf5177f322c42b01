"""Bytes sent to the Hub against bytes that changed: first release, card-only change, no-op.

Target (issue 4): a ratio of 1.0 plus protocol overhead. Bytes sent are every request body the
embedded Hub received (preupload samples, LFS batch, uploads, the NDJSON commit, tags).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section

from hubpub import api
from hubpub.hub import HubServer, Identity
from hubpub.hubclient import HubTarget, client, commit_plan, plan_upload

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "model_specs" / "demo" / "smollm2-135m.yaml"
TOKEN = "hf_bench_token"


def sent(server: HubServer) -> int:
    return sum(server.received_bytes.values())


def main() -> None:
    os.environ["HF_TOKEN"] = TOKEN
    (outcome,) = api.release([SPEC], variant="W4A16", push=False)
    rows = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        HubServer(Path(scratch) / "hub", tokens={TOKEN: Identity(name="bench")}) as server,
    ):
        (first,) = api.push([SPEC], variant="W4A16", hub=server.url, roundtrip=False)
        rows.append(("first release", first.plan.bytes_to_send, sent(server)))

        before = sent(server)
        (noop,) = api.push([SPEC], variant="W4A16", hub=server.url, roundtrip=False)
        no_op_changed = noop.plan.bytes_to_send
        rows.append(("no-op (push of the unchanged release)", no_op_changed, sent(server) - before))
        card = Path(scratch) / "card-change"
        shutil.copytree(outcome.staged_dir, card)
        (card / "README.md").write_text("---\nlicense: apache-2.0\n---\n# A changed card\n" * 20, encoding="utf-8")
        target = HubTarget("url", server.url, TOKEN)
        hub_client = client(target)
        plan = plan_upload(hub_client, outcome.repo_id, card)
        before = sent(server)
        commit_plan(hub_client, target, outcome.repo_id, card, plan, title="card only", description="")
        rows.append(("card-only change", plan.bytes_to_send, sent(server) - before))

    lines = [
        "## Publish bytes (bench/publish_bytes.py)",
        "",
        "The demo W4A16 release pushed to the embedded Hub. Bytes sent: every request body the Hub received."
        " Bytes changed: the sizes of the added and changed files. Regular (non-LFS) files travel base64-encoded"
        " inside the commit body, which is most of the first release's overhead (tokenizer.json, 3.5 MB).",
        "",
        "| push | bytes changed | bytes sent | ratio | overhead |",
        "|---|---|---|---|---|",
    ]
    for label, changed, total in rows:
        ratio = f"{total / changed:.4f}" if changed else "– (nothing changed)"
        lines.append(f"| {label} | {changed:,} | {total:,} | {ratio} | {total - changed:,} bytes |")
    write_section("publish_bytes", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
