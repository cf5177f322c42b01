"""The embedded Hub imports nothing from the rest of hubpub, so it runs on its own as `hubpub hub serve`."""

from __future__ import annotations

import ast
from pathlib import Path

import hubpub.hub


def test_the_hub_package_imports_only_itself_from_hubpub() -> None:
    for path in Path(hubpub.hub.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            outside = [name for name in names if name.split(".")[0] == "hubpub" and not name.startswith("hubpub.hub")]
            assert outside == [], f"{path.name} imports {outside}"
