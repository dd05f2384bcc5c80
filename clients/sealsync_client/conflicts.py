"""Conflict copies: finding them, and settling one (`sealsync conflicts`).

A conflict copy is named `NAME (conflicted copy from DEVICE YYYY-MM-DD).EXT`
(names.conflict_name, maybe with a number after the date): DEVICE is the
device whose version lost the race and was kept aside, the date (UTC) when.
Settling one is two ordinary local changes that the next pass uploads:

* keep-mine: the copy's bytes replace the file at the original name (a new
  revision of it), and the copy goes (a signed delete);
* keep-theirs: the original stays, and the copy goes.

Either way the version that is dropped stays in the server's history
(`sealsync history`, `sealsync restore`): nothing is lost.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import SealsyncClientError

_COPY = re.compile(r"^(?P<stem>.*) \(conflicted copy from (?P<device>.*) "
                   r"(?P<date>\d{4}-\d{2}-\d{2})\)(?: (?P<n>\d+))?(?P<ext>\.[^./ ]*)?$")
KEEP = ("keep-mine", "keep-theirs")


class CannotResolve(SealsyncClientError):
    """A conflict that cannot be settled as asked (exit code 2)."""


@dataclass(frozen=True)
class Copy:
    path: str  # the conflict copy
    original: str  # the name it was kept aside from
    device: str  # the device whose version it is
    date: str  # YYYY-MM-DD, UTC

    def as_dict(self, root: Path) -> dict[str, object]:
        there = root / self.original
        return {"path": self.path, "original": self.original, "device": self.device,
                "date": self.date, "original_exists": os.path.lexists(there),
                "size": _size(root / self.path)}


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def parse(rel: str) -> Copy | None:
    """The conflict copy `rel` names, or None for an ordinary name."""
    head, _, name = rel.rpartition("/")
    m = _COPY.match(name)
    if m is None or not m["stem"]:
        return None
    original = m["stem"] + (m["ext"] or "")
    return Copy(rel, f"{head}/{original}" if head else original, m["device"], m["date"])


def find(paths: Iterable[str]) -> list[Copy]:
    return sorted((c for c in map(parse, paths) if c is not None), key=lambda c: c.path)


def pick(copies: list[Copy], rel: str) -> Copy:
    """The copy PATH names: a conflict copy, or an original with exactly one."""
    for c in copies:
        if c.path == rel:
            return c
    mine = [c for c in copies if c.original == rel]
    if len(mine) == 1:
        return mine[0]
    if mine:
        raise CannotResolve(f"{rel} has {len(mine)} conflict copies: name the one to settle: "
                            + ", ".join(c.path for c in mine))
    raise CannotResolve(f"{rel} is not a conflict copy, nor a file that has one "
                        "(see `sealsync conflicts DIR`)")


def settle(root: Path, copy: Copy, keep: str) -> None:
    """Make the local change that settles `copy` (the caller syncs it)."""
    source, target = root / copy.path, root / copy.original
    if os.path.isdir(target) and not os.path.islink(target):
        raise CannotResolve(f"{copy.original} is a directory: move the copy by hand")
    if keep == "keep-mine":
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    elif keep == "keep-theirs":
        os.unlink(source)
    else:
        raise CannotResolve(f"--resolve takes one of {', '.join(KEEP)}")
