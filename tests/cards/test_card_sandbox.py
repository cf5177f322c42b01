"""A spec's card template is user input: it renders in Jinja2's immutable sandbox and reads only its own folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubpub.errors import SpecError
from hubpub.manifest import Manifest
from hubpub.spec import ReleaseSpec, load_spec
from hubpub.stages import card
from tests.conftest import DEMO_SPEC

FIXTURE = Path(__file__).parent / "fixtures" / "demo-W4A16.json"


def render_with(template: Path) -> str:
    release: ReleaseSpec = load_spec(DEMO_SPEC).select("W4A16")[0]
    release = release.model_copy(update={"card": release.card.model_copy(update={"template": template})})
    manifest = Manifest.model_validate_json(FIXTURE.read_text())
    return card.run(release, manifest, [manifest], base_bytes=1, base_license=None).text


def hostile(tmp_path: Path, expression: str) -> Path:
    template = tmp_path / "card.md.j2"
    template.write_text(
        '{% extends "model_card.md.j2" %}\n{% block citation %}\n## Citation\n\n' + expression + "\n{% endblock %}\n"
    )
    return template


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "access to attribute '__class__' of 'str' object is unsafe"),
        (
            "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
            "access to attribute '__init__' of 'type' object is unsafe",
        ),
        (
            "{{ card.__class__.__base__.__subclasses__() }}",
            "access to attribute '__class__' of 'dict' object is unsafe",
        ),
        ("{{ card.update({'repo_id': 'x'}) }}", "access to attribute 'update' of 'dict' object is unsafe"),
    ],
)
def test_a_template_reaching_for_python_internals_is_refused_at_its_line(
    tmp_path: Path, expression: str, reason: str
) -> None:
    template = hostile(tmp_path, expression)
    with pytest.raises(SpecError) as refused:
        render_with(template)
    assert refused.value.exit_code == 2
    (problem,) = refused.value.problems
    assert (problem.file, problem.line, problem.field) == (template.resolve(), 5, "card.template")
    assert problem.message == f"the template reaches for what a card template may not use: {reason}."
    assert str(refused.value).startswith(f"{template.resolve()}:5:1: card.template: ")


def test_a_template_cannot_include_a_file_through_a_link_out_of_its_folder(tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the owner's token")
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "elsewhere").symlink_to(secret.parent, target_is_directory=True)
    template = hostile(folder, '{% include "elsewhere/secret.txt" %}')
    with pytest.raises(SpecError) as refused:
        render_with(template)
    (problem,) = refused.value.problems
    assert (problem.file, problem.line) == (template.resolve(), 5)
    assert problem.message == "the template cannot be rendered: elsewhere/secret.txt"


def test_a_template_cannot_include_by_an_absolute_or_parent_path(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("the owner's token")
    folder = tmp_path / "bundle"
    folder.mkdir()
    for name in (str(tmp_path / "secret.txt"), "../secret.txt"):
        with pytest.raises(SpecError, match="the template cannot be rendered") as refused:
            render_with(hostile(folder, '{% include "' + name + '" %}'))
        assert "the owner's token" not in str(refused.value)


def test_the_sandbox_keeps_inheritance_and_strictness(tmp_path: Path) -> None:
    template = hostile(tmp_path, "{{ card.repo_id | upper }} {{ card.scheme.name }}")
    assert render_with(template).rstrip().endswith("## Citation\n\nDEMO/SMOLLM2-135M-INSTRUCT-W4A16 W4A16")
