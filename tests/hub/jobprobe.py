"""Run inside a job's box by tests/hub/test_jobs_attacks.py: tries what a job's code would try, prints JSON.

Arguments: the paths to read. It also writes `written.txt` in its folder, reads every visible process's
environment, and tries to unmount the masks it was given with --umount.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys


def main() -> None:
    reads = {}
    umounts = {}
    paths = sys.argv[1:]
    if "--umount" in paths:
        at = paths.index("--umount")
        paths, masks = paths[:at], paths[at + 1 :]
        libc = ctypes.CDLL(None, use_errno=True)
        for mask in masks:
            umounts[mask] = libc.umount2(mask.encode(), 2) == 0 or os.strerror(ctypes.get_errno())
    for path in paths:
        try:
            with open(path, "rb") as handle:
                reads[path] = handle.read(200).decode(errors="replace")
        except OSError as error:
            reads[path] = f"error: {error.strerror}"
    environments = {}
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environments[pid] = handle.read().decode(errors="replace")
        except OSError as error:
            environments[pid] = f"error: {error.strerror}"
    with open("written.txt", "w") as handle:
        handle.write("written from the box")
    with open("/proc/self/status") as handle:
        no_new_privs = handle.read().split("NoNewPrivs:")[1].split()[0]
    report = {
        "reads": reads,
        "umounts": umounts,
        "environments": environments,
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "sys_path": sys.path,
        "hubpub": importlib.util.find_spec("hubpub").origin,  # type: ignore[union-attr]
        "no_new_privs": no_new_privs,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
