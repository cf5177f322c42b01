"""The box a job runs in: started by util-linux `unshare` in new user, mount and PID namespaces (with a fresh
/proc), this script masks what the job must not read, makes every other mount read-only but for the job's
folder (and a fresh /dev/shm), then runs the job's module as its only child.

It runs as a file (`python -I jobbox.py CONFIG`) and imports the standard library alone. CONFIG is JSON:
`store` (masked by an empty tmpfs, with the job's own `folder` bound back at its path), `masks` (folders
masked by an empty tmpfs, files by /dev/null: the tokens file, the server user's Hugging Face token and
cache), `path` (folders put in front of sys.path: where the server's own hubpub lives), `module` and `argv`
(what runs; none for the start-up check). Then no_new_privs is set and a second user and mount namespace
is entered, which locks every mount made here: the job cannot unmount a mask to see what it hides.
As the PID namespace's first process it forwards SIGTERM, SIGINT and SIGHUP to the job, reaps orphans
and exits with the job's status; when it ends, the kernel kills whatever is left in the namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import runpy
import signal
import sys
from typing import Any

MS_NOSUID = 2
MS_NODEV = 4
MS_BIND = 4096
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
PR_SET_NO_NEW_PRIVS = 38
SYS_MOUNT_SETATTR = 442
"""The same number on x86-64 and arm64 (the generic syscall table)."""
MOUNT_ATTR_RDONLY = 1
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    kind, options = (fstype.encode() if fstype else None), (data.encode() if data else None)
    _check(_libc.mount(source.encode(), target.encode(), kind, flags, options), f"mount {target}")


def _mask(path: str) -> None:
    if os.path.isdir(path):
        _mount("none", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
    elif os.path.lexists(path):
        _mount("/dev/null", path, None, MS_BIND)


def box(config: dict[str, Any]) -> None:
    """Mask, make the rest read-only, bind the job's folder back, lock the mounts (see the module's docstring)."""
    folder = config["folder"]
    handle = os.open(folder, os.O_PATH | os.O_DIRECTORY)
    for path in [*config["masks"], config["store"]]:
        _mask(path)
    os.makedirs(folder, exist_ok=True)
    _set_mount_attributes("/", MOUNT_ATTR_RDONLY, 0, recursive=True)
    _set_mount_attributes("/proc", 0, MOUNT_ATTR_RDONLY)  # the nested user namespace's maps are written there
    if os.path.isdir("/dev/shm"):
        _mount("none", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    _mount(f"/proc/self/fd/{handle}", folder, None, MS_BIND)
    os.close(handle)
    _set_mount_attributes(folder, 0, MOUNT_ATTR_RDONLY)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{name}", "w") as handle_file:
            handle_file.write(text)
    os.chdir(folder)


def _set_mount_attributes(path: str, set_flags: int, clear_flags: int, *, recursive: bool = False) -> None:
    """mount_setattr(2) (Linux 5.12): read-only on or off for the mount at `path`, or every mount under it."""
    attributes = (ctypes.c_uint64 * 4)(set_flags, clear_flags, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), flags, ctypes.byref(attributes), 32)
    _check(result, f"mount_setattr {path}")


def run(config: dict[str, Any]) -> int:
    """Run the job's module in a child and wait for it, as the namespace's init; returns its exit status."""
    child = os.fork()
    if child == 0:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        sys.path[:0] = config["path"]
        sys.argv = list(config["argv"])
        code = 0
        try:
            runpy.run_module(config["module"], run_name="__main__", alter_sys=True)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException as error:  # the job's own traceback, as python would print it
            sys.excepthook(type(error), error, error.__traceback__)
            code = 1
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: _forward(child, number))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        except InterruptedError:
            continue
        if pid == child:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def _forward(child: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signum)


def main() -> None:
    config = json.loads(sys.argv[1])
    try:
        box(config)
    except OSError as error:
        print(f"hubpub job box: {error}", file=sys.stderr, flush=True)
        sys.exit(125)
    if config.get("module") is None:
        sys.exit(0)
    sys.stdout.flush()
    sys.exit(run(config))


if __name__ == "__main__":
    main()
