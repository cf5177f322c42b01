"""lm-eval renders a task's doc_to_text/doc_to_target with a plain Jinja2 Environment; hubpub's evaluate child
swaps it for the immutable sandbox, so a task file from a spec cannot reach Python through a template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ESCAPE = "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}"


def render_in_child(template: str, sandboxed: bool) -> subprocess.CompletedProcess[str]:
    script = (
        "import lm_eval.utils\n"
        + (
            "from hubpub.stages._evaluate_child import sandbox_task_templates\nsandbox_task_templates()\n"
            if sandboxed
            else ""
        )
        + f"print(lm_eval.utils.apply_template({template!r}, {{'text': 'Paris', 'answer': 'b'}}))\n"
    )
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)


def test_a_task_template_cannot_run_commands_in_the_evaluate_child(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    unsandboxed = render_in_child(ESCAPE.replace("MARKER", str(marker)), sandboxed=False)
    assert unsandboxed.returncode == 0 and marker.exists(), (
        "lm-eval's own environment no longer runs it: drop the swap?"
    )
    marker.unlink()
    refused = render_in_child(ESCAPE.replace("MARKER", str(marker)), sandboxed=True)
    assert refused.returncode == 1
    assert (
        "jinja2.exceptions.SecurityError: access to attribute '__init__' of 'type' object is unsafe." in refused.stderr
    )
    assert not marker.exists()


def test_task_templates_still_render_with_lm_evals_filters() -> None:
    rendered = render_in_child("Q: {{ text | regex_replace('P', 'p') }} A: {{ answer | upper }}", sandboxed=True)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == "Q: paris A: B\n"
