"""Load a task's local JSON/JSONL data files relative to the task's YAML file.

lm-eval 0.4.13 hands `dataset_kwargs` straight to `datasets.load_dataset("json", ...)`,
and `datasets` resolves relative `data_files` against the current working directory,
so a plain relative path only works when lm-eval is started from this folder.

The YAML files here therefore also set `custom_dataset: !function local_json.load`.
lm-eval finds this module next to the YAML (a `!function` module path is looked up in
the YAML's own folder first) and, when `custom_dataset` is set, calls it with
`**metadata, **dataset_kwargs` instead of calling `load_dataset` itself.  The task's
metadata carries `config_source`, the absolute path of the YAML being built, which is
what relative paths are resolved against here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets


def _resolve(path: str, base: Path) -> str:
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else (base / candidate).resolve())


def load(data_files: str | list | dict, config_source: str | None = None, **_: Any) -> datasets.DatasetDict:
    """`datasets.load_dataset("json", data_files=...)` with `data_files` relative to the YAML."""
    base = Path(config_source).parent if config_source and config_source != "inline" else Path(__file__).parent
    if isinstance(data_files, dict):
        files: Any = {
            split: [_resolve(p, base) for p in paths] if isinstance(paths, list) else _resolve(paths, base)
            for split, paths in data_files.items()
        }
    elif isinstance(data_files, list):
        files = [_resolve(p, base) for p in data_files]
    else:
        files = _resolve(data_files, base)
    return datasets.load_dataset("json", data_files=files)
