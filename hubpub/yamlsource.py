"""YAML with line and column marks, so that errors can point at the user's line.

The document is composed to a node tree with the safe loader, then converted here. That
gives every key and value a position, rejects duplicate keys (which PyYAML silently
overwrites), and bounds alias expansion, so a "billion laughs" document is refused
instead of exhausting memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hubpub.errors import SpecError, SpecProblem

MAX_NODES = 20_000

_PLAIN_COLLECTION_TAGS = frozenset({"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int
    column: int


@dataclass
class Located:
    """A loaded YAML document plus where each of its keys and values stands in the file."""

    file: Path
    data: Any
    key_marks: dict[PathKey, Mark] = field(default_factory=dict)
    value_marks: dict[PathKey, Mark] = field(default_factory=dict)

    def mark_of(self, path: PathKey, *, key: bool = False) -> Mark:
        """The best position for `path`: the key or value itself, else its nearest ancestor."""
        marks = self.key_marks if key else self.value_marks
        probe = path
        while probe:
            if probe in marks:
                return marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            probe = probe[:-1]
        return self.value_marks.get((), Mark(1, 1))

    def problem(self, path: PathKey, field_name: str, message: str, *, key: bool = False) -> SpecProblem:
        mark = self.mark_of(path, key=key)
        return SpecProblem(self.file, mark.line, mark.column, field_name, message)


def _mark(node: yaml.Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Converter:
    def __init__(self, located: Located) -> None:
        self.located = located
        self.budget = MAX_NODES
        self.scalars = yaml.constructor.SafeConstructor()

    def fail(self, node: yaml.Node, message: str) -> SpecError:
        mark = _mark(node)
        return SpecError([SpecProblem(self.located.file, mark.line, mark.column, "", message)])

    def convert(self, node: yaml.Node, path: PathKey) -> Any:
        self.budget -= 1
        if self.budget < 0:
            # An alias shares its anchor's node and marks, so point at the top-level key being expanded.
            mark = self.located.key_marks.get(path[:1], Mark(1, 1))
            message = f"the document expands to more than {MAX_NODES} values (runaway aliases?); refusing to load it"
            raise SpecError([SpecProblem(self.located.file, mark.line, mark.column, "", message)])
        self.located.value_marks.setdefault(path, _mark(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and node.tag not in _PLAIN_COLLECTION_TAGS:
            raise self.fail(node, f"YAML tag {node.tag} is not allowed in a spec")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return self.scalars.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            raise self.fail(node, f"cannot read this value: {exc.problem}") from None

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        if any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value):
            raise self.fail(node, "YAML merge keys (<<) are not supported in specs; use `variants:` instead")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "mapping keys must be plain names")
            key = str(self.scalars.construct_object(key_node))
            if key in result:
                raise self.fail(key_node, f"duplicate key '{key}'")
            child = (*path, key)
            self.located.key_marks[child] = _mark(key_node)
            result[key] = self.convert(value_node, child)
        return result


def load_yaml(file: Path) -> Located:
    """Load one YAML document from `file`, keeping the position of every key and value."""
    located = Located(file=file, data=None)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecProblem(file, 1, 1, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"cannot read the file: {exc}")]) from None
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        yaml_mark = exc.problem_mark or exc.context_mark
        line, column = (yaml_mark.line + 1, yaml_mark.column + 1) if yaml_mark else (1, 1)
        reason = " ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError([SpecProblem(file, line, column, "", f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([SpecProblem(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    documents = [document for document in documents if document is not None]
    if not documents:
        raise SpecError([SpecProblem(file, 1, 1, "", "the file is empty; a release spec is a YAML mapping")])
    if len(documents) > 1:
        second = _mark(documents[1])
        raise SpecError(
            [SpecProblem(file, second.line, second.column, "", "one spec per file: found a second YAML document")]
        )
    root = documents[0]
    if not isinstance(root, yaml.MappingNode):
        mark = _mark(root)
        raise SpecError(
            [SpecProblem(file, mark.line, mark.column, "", "a release spec must be a YAML mapping of keys to values")]
        )
    located.data = _Converter(located).convert(root, ())
    return located
