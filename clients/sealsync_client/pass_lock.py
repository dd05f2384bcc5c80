"""One sync pass per folder at a time, across processes.

`sealsync watch` (or the background service) and a `sealsync sync` typed
by hand may run on one folder at once. Two passes both see the same new
file before either has recorded it in state.db, so both uploaded it: two
files at one path on the server, which every other device then downloads
twice. A pass therefore holds an exclusive lock on `.sealsync/pass.lock`
for its duration; a second pass waits for the first to finish (saying so
once on stderr) and then finds its work done.

The lock is the operating system's (flock on POSIX, a locked byte on
Windows): it is released when the process exits, however it dies, so a
killed pass never wedges the folder.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import SealsyncClientError

LOCK_FILE = "pass.lock"


def _say_waiting(meta: Path) -> None:
    print(f"sealsync: another sync pass of {meta.parent} is running; "
          "waiting for it to finish", file=sys.stderr, flush=True)


@contextmanager
def one_pass(meta: Path, on_wait: Callable[[Path], None] = _say_waiting) -> Iterator[None]:
    """Hold the folder's pass lock (`meta`: its `.sealsync/`) while the
    block runs, waiting for any other holder first."""
    try:
        fd = os.open(meta / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # e.g. made a directory by hand: one line, not a trace
        raise SealsyncClientError(f"cannot open {meta / LOCK_FILE}: "
                                  f"{exc.strerror or exc}") from None
    try:
        if not _try_lock(fd):
            on_wait(meta)
            while not _try_lock(fd, block=True):
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int, block: bool = False) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # LK_LOCK gives up after 10 s
        except OSError:
            return False
        return True
else:
    import fcntl

    def _try_lock(fd: int, block: bool = False) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True
