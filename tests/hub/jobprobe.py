"""Run inside a job's box by tests/hub/test_jobs_attacks.py: tries what a job's code would try, prints JSON.

With --print-then-wait it prints one line and sleeps (is its output read as it comes?). Otherwise, its
arguments are the paths to read, then after --umount the masks to unmount, then after --write the paths to
write. It also writes `written.txt` in its folder, reads every visible process's environment and tries to
make the root mount writable again.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
import time


def main() -> None:
    if sys.argv[1:] == ["--print-then-wait"]:
        print("first line")
        time.sleep(60)
        return
    reads, umounts, writes = {}, {}, {}
    arguments = sys.argv[1:]
    paths = arguments[: arguments.index("--umount")]
    masks = arguments[arguments.index("--umount") + 1 : arguments.index("--write")]
    libc = ctypes.CDLL(None, use_errno=True)
    for mask in masks:
        umounts[mask] = libc.umount2(mask.encode(), 2) == 0 or os.strerror(ctypes.get_errno())
    writable = (ctypes.c_uint64 * 4)(0, 1, 0, 0)  # mount_setattr: clear MOUNT_ATTR_RDONLY, recursively
    remount = libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(writable), 32) == 0 or os.strerror(ctypes.get_errno())
    for path in arguments[arguments.index("--write") + 1 :]:
        try:
            with open(path, "w") as handle:
                handle.write("written from the box")
            writes[path] = "written"
        except OSError as error:
            writes[path] = f"error: {error.strerror}"
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
        "remount": remount,
        "writes": writes,
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
