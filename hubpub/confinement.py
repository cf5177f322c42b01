"""A release, validate or plan run as a job on the embedded Hub (HUBPUB_JOB_CONFINED=1): boxed into its bundle.

Such a job is anyone's code-free request to this machine: its spec comes from the spec bundle unpacked into
the job's folder, and nothing it names may reach outside that folder. Options that name places or programs
are refused; spec fields that name programs are refused; every local path the spec names must resolve,
links followed, inside the unpacked bundle; lm-eval task files may not import Python (`!function`) nor
include files from outside the bundle. Each refusal of a spec is a SpecError at the user's line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from hubpub.errors import SpecError, SpecProblem, UsageError
from hubpub.spec import field_label, local_paths, spec_sections
from hubpub.yamlsource import Located, PathKey, load_yaml

JOB_CONFINED_ENV = "HUBPUB_JOB_CONFINED"
"""Set to 1 by the embedded Hub for the jobs it runs; a job cannot set it itself."""
_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("null", "bool", "int", "float", "binary", "timestamp", "omap", "pairs", "set", "str", "seq", "map")
)
MAX_TASK_FILES = 1000


def require_bundle(spec_bundle_env: str | None) -> None:
    """A confined job reads its spec from its bundle, never from a path on this machine."""
    if spec_bundle_env is None:
        raise UsageError("a job on the embedded Hub takes its spec from its spec bundle: --spec-bundle-env is required")


def refuse_options(given: dict[str, bool]) -> None:
    """Raise UsageError naming every option (name → whether it was given) a confined job may not use."""
    named = [option for option, present in given.items() if present]
    if named:
        raise UsageError(
            f"a job on the embedded Hub cannot use {', '.join(named)}: it works in its own folder, with this"
            " server's programs only"
        )


def check_specs(paths: list[Path], bundle: Path) -> None:
    """Raise SpecError listing, at each user's line, what in these spec files reaches outside `bundle`."""
    problems = [problem for path in paths for problem in spec_problems(path, bundle)]
    if problems:
        raise SpecError(problems)


def spec_problems(path: Path, bundle: Path) -> list[SpecProblem]:
    """What in one spec file (its shared keys and every variant) reaches outside `bundle` or names a program."""
    root = bundle.resolve()
    located = load_yaml(path)
    if not _inside(path, root):
        return [located.problem((), "", f"the spec file is outside the job's bundle {root}")]
    problems: list[SpecProblem] = []
    for where, section in spec_sections(located.data):
        problems += _section_problems(located, where, section, root)
    return sorted(set(problems), key=lambda problem: (problem.line, problem.column, problem.field, problem.message))


def _section_problems(located: Located, where: PathKey, section: dict[str, Any], root: Path) -> list[SpecProblem]:
    spec_dir = located.file.parent
    problems: list[SpecProblem] = []

    def refuse(keys: PathKey, message: str) -> None:
        path = (*where, *keys)
        problems.append(located.problem(path, field_label(path), message))

    def outside(keys: PathKey, value: object, *, under: Path | None = None) -> Path | None:
        """The path `value` names, or None after a refusal when it leaves the bundle (or is no string)."""
        if not isinstance(value, str):
            return None
        named = (under or spec_dir) / value
        if value.startswith("~") or not _inside(named, root):
            refuse(keys, f"'{value}' is outside the job's bundle: a job reads only the files its bundle holds")
            return None
        return named

    verify, source = section.get("verify"), section.get("source")
    if isinstance(verify, dict) and "vllm_python" in verify:
        refuse(
            ("verify", "vllm_python"),
            "a job on the embedded Hub cannot name a program to run: remove verify.vllm_python",
        )
    for keys, value in local_paths(section):
        named = outside(keys, value)
        if named is None:
            continue
        if keys == ("source", "path") and isinstance(source, dict) and "gguf_file" in source:
            outside(("source", "gguf_file"), source["gguf_file"], under=named)
        elif keys[:2] == ("evaluation", "include_path") and named.is_dir():
            for message in task_folder_problems(named, root):
                refuse(keys, message)
    return problems


def task_folder_problems(folder: Path, root: Path) -> list[str]:
    """Why lm-eval's reading of a task folder would reach outside `root` or import Python: links out, task
    YAML files with `!function` (lm-eval imports the module it names from the task's folder) or other
    Python tags, and `include:` of files outside the bundle."""
    problems: list[str] = []
    checked: set[Path] = set()
    pending: list[Path] = []
    for count, member in enumerate(_members(folder)):
        if count >= MAX_TASK_FILES:
            problems.append(f"{folder.name} holds more than {MAX_TASK_FILES} files")
            break
        if not _inside(member, root):
            problems.append(f"{_shown(member, root)} links outside the job's bundle")
        elif member.suffix in (".yaml", ".yml") and member.is_file():
            pending.append(member)
    while pending:
        task_file = pending.pop()
        if task_file in checked:
            continue
        checked.add(task_file)
        shown = _shown(task_file, root)
        try:
            document = yaml.compose(task_file.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{shown}: cannot be read as YAML: {exc}")
            continue
        tagged = [node for node in _nodes(document) if node.tag not in _PLAIN_TAGS]
        for node in tagged:
            mark = node.start_mark
            problems.append(
                f"{shown}:{mark.line + 1}:{mark.column + 1}: the tag {node.tag} makes lm-eval import Python"
                " from the task folder; a job's tasks may only use plain YAML (no !function)"
            )
        if not tagged:
            problems += [f"{shown}: {message}" for message in _data_problems(document)]
        for include in _includes(document):
            target = task_file.parent / include
            if include.startswith("~") or not _inside(target, root):
                problems.append(f"{shown}: include '{include}' is outside the job's bundle")
            elif target.is_file():
                pending.append(target)
    return problems


def _data_problems(document: yaml.Node | None) -> list[str]:
    """A task's dataset named by a local path (lm-eval hands it to `datasets`, which reads it from this
    machine): absolute, from a home folder, through `..` or as a file URL. Hub dataset ids pass."""
    loaded = yaml.SafeLoader("").construct_document(document) if document is not None else None
    if not isinstance(loaded, dict):
        return []
    named: list[tuple[str, object]] = [("dataset_path", loaded.get("dataset_path"))]
    kwargs = loaded.get("dataset_kwargs")
    if isinstance(kwargs, dict):
        named += [(f"dataset_kwargs.{key}", kwargs.get(key)) for key in ("data_dir", "data_files")]
    problems = []
    for key, value in named:
        for text in _strings(value):
            if text.startswith(("/", "~", "file:")) or ".." in PurePosixPath(text).parts or "\\" in text:
                problems.append(f"{key} '{text}' is a path outside the job's bundle")
    return problems


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


def _members(folder: Path) -> Iterator[Path]:
    """Every entry under `folder`, links included but not followed."""
    for parent, names, files in os.walk(folder):
        for name in sorted(names + files):
            yield Path(parent) / name


def _nodes(node: yaml.Node | None) -> Iterator[yaml.Node]:
    if node is None:
        return
    yield node
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _nodes(key)
            yield from _nodes(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _nodes(item)


def _includes(document: yaml.Node | None) -> list[str]:
    if not isinstance(document, yaml.MappingNode):
        return []
    for key, value in document.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "include":
            items = value.value if isinstance(value, yaml.SequenceNode) else [value]
            return [str(item.value) for item in items if isinstance(item, yaml.ScalarNode)]
    return []


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(root)


def _shown(path: Path, root: Path) -> str:
    """`path` relative to the bundle (the link itself when it is one), as the user laid the bundle out."""
    lexical = Path(os.path.realpath(path.parent)) / path.name
    return lexical.relative_to(root).as_posix() if lexical.is_relative_to(root) else str(path)
