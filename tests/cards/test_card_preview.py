"""`hubpub card SPEC --preview`: the staged, unpushed releases through the embedded Hub's pages."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hubpub import api
from hubpub.pipeline import release_dir
from hubpub.spec import load_spec
from tests.conftest import demo_spec_copy, run_cli

HERE = Path(__file__).parent
W4A16 = "demo/SmolLM2-135M-Instruct-W4A16"
W8A8 = "demo/SmolLM2-135M-Instruct-W8A8"


def stage_demo_family(folder: Path, variants: tuple[str, ...] = ("W4A16", "W8A8")) -> tuple[Path, Path]:
    """(spec, workdir) with the demo family staged as `release --no-push` leaves it: the card hubpub rendered
    for each variant (the golden files), its manifest, and a checkpoint file."""
    source = folder / "source"
    source.mkdir()
    (source / "SmolLM2-135M-Instruct.Q4_1.gguf").touch()
    spec = demo_spec_copy(folder, replace={"path: ../../.cache/demo-models": f"path: {source}"})
    workdir = folder / "work"
    for release in load_spec(spec).releases:
        if release.variant not in variants:
            continue
        staged = release_dir(workdir, release) / "staged"
        staged.mkdir(parents=True)
        shutil.copy(HERE / "golden" / f"demo-{release.variant}.md", staged / "README.md")
        shutil.copy(HERE / "fixtures" / f"demo-{release.variant}.json", staged / "hubpub-manifest.json")
        (staged / "model.safetensors").write_bytes(bytes(1500))
    return spec, workdir


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", errors="replace")


def test_the_preview_shows_each_staged_card_as_the_hub_would_marked_unpublished(tmp_path: Path) -> None:
    spec, workdir = stage_demo_family(tmp_path)
    with api.preview([spec], workdir=workdir) as server:
        status, index = get(server.pages_url)
        assert status == 200 and "preview, not published" in index
        assert "smollm2-135m-demo" in index and f'href="/{W4A16}"' in index and f'href="/{W8A8}"' in index
        status, page = get(f"{server.url}/{W4A16}")
    assert status == 200
    assert '<span class="badge preview">preview, not published</span>' in page
    assert "<th>Property</th>" in page and '<section id="evaluation">' in page and "demo_capitals" in page
    assert f'<a href="/{W8A8}">{W8A8}</a>' in page, "a staged sibling's link stays on the preview"
    assert 'model.safetensors</td><td class="align-right">1.5 kB</td>' in page
    assert "Staged in <code>releases/demo__SmolLM2-135M-Instruct-W4A16/staged</code> of the workdir" in page
    assert "/resolve/main/" not in page, "staged files are listed, not served"


def test_card_preview_serves_until_interrupted(tmp_path: Path) -> None:
    spec, workdir = stage_demo_family(tmp_path, variants=("W8A8",))
    command = [sys.executable, "-m", "hubpub", "card", str(spec), "--variant", "W8A8", "--workdir", str(workdir)]
    server = subprocess.Popen(
        [*command, "--preview", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("previewing staged releases (not published) at http://127.0.0.1:"), first
        url = first.rsplit(" at ", 1)[1].strip()
        assert server.stdout.readline().strip() == f"{url.rstrip('/')}/{W8A8}"
        status, page = get(f"{url.rstrip('/')}/{W8A8}")
        assert status == 200 and "preview, not published" in page and "W8A8 vs Other Schemes" in page
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=20)
    assert server.returncode == 130 and "Traceback" not in stderr


def test_preview_of_a_release_that_was_not_staged_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, workdir = stage_demo_family(tmp_path, variants=("W8A8",))
    code, _, err = run_cli(["card", str(spec), "--workdir", str(workdir), "--preview"], capsys)
    assert code == 3 and f"{W4A16} has no staged release" in err and "run `hubpub release` first" in err
    code, _, err = run_cli(["card", str(spec), "--workdir", str(workdir), "--preview", "-o", "x.md"], capsys)
    assert code == 2 and "--preview" in err


def test_the_preview_pages_show_no_absolute_path_of_this_machine(tmp_path: Path) -> None:
    spec, workdir = stage_demo_family(tmp_path)
    with api.preview([spec], workdir=workdir) as server:
        pages = [get(server.pages_url), get(f"{server.url}/{W4A16}"), get(f"{server.url}/{W8A8}")]
    staged = release_dir(workdir, load_spec(spec).select("W4A16")[0]) / "staged"
    for status, page in pages:
        assert status == 200
        assert str(tmp_path) not in page and str(staged) not in page and str(Path.home()) not in page


@pytest.mark.parametrize(
    ("host", "warned"),
    [
        ("0.0.0.0", True),
        ("::", True),
        ("192.168.1.5", True),
        ("127.0.0.1", False),
        ("localhost", False),
        ("::1", False),
    ],
)
def test_a_preview_beyond_loopback_warns_that_it_shows_private_cards_to_anyone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, host: str, warned: bool
) -> None:
    """The CLI's decision, on a real preview server; that server binds 127.0.0.1 whatever --host says, since a
    test listens on nothing beyond loopback, and stops at once as if interrupted."""
    from hubpub.hub.server import HubServer

    spec, workdir = stage_demo_family(tmp_path, variants=("W8A8",))
    real_preview = api.preview
    asked: list[str] = []

    def preview_on_loopback(*args: object, host: str, **kwargs: object) -> HubServer:
        asked.append(host)
        return real_preview(*args, host="127.0.0.1", **kwargs)  # type: ignore[arg-type]

    def interrupted(self: HubServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "preview", preview_on_loopback)
    monkeypatch.setattr(HubServer, "serve_forever", interrupted)
    command = ["card", str(spec), "--variant", "W8A8", "--workdir", str(workdir), "--preview", "--port", "0"]
    code, out, err = run_cli([*command, "--host", host], capsys)
    assert code == 130 and asked == [host] and "previewing staged releases" in out
    assert ("warning: the preview listens on" in err and "private ones included" in err) is warned, err
