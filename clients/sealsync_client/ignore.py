"""Which paths this device keeps out of sync: ignore rules and excluded
subtrees (docs/CLIENT.md, "Ignore rules" and "Selective sync").

Pure: the rules come in as text and a list, nothing here reads the disk.

* Ignore rules are gitignore syntax (parsed by `pathspec`), from the
  folder's top-level `.sealsyncignore` after the built-in DEFAULTS (so a
  `!pattern` line there can take a default back). The `.sealsyncignore`
  file itself is never ignored: it syncs, so every device shares the rules.
* Excluded subtrees (`sealsync exclude`) are folder-relative paths kept on
  the server only, on this device.

A path that is ignored or excluded is "withheld": never uploaded, never
deleted here by a remote change, and a remote version of it is recorded
but not placed here (selective.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pathspec

IGNORE_FILE = ".sealsyncignore"

# What no one means to sync: OS litter, Office lock files, editor swap and
# backup files, and browsers' partial downloads.
DEFAULTS = (
    ".DS_Store", "._*", ".Spotlight-V100/", ".Trashes/", ".fseventsd/",  # macOS
    "Thumbs.db", "ehthumbs.db", "desktop.ini", "$RECYCLE.BIN/",  # Windows
    ".directory", ".Trash-*/",  # Linux desktops
    "~$*", ".~lock.*#",  # Office and LibreOffice lock files
    "*.swp", "*.swo", "*.swx", "*~", ".#*", r"\#*#",  # vim, emacs and other editors
    "*.part", "*.crdownload", "*.download", "*.partial",  # partial downloads
)


def normalise(path: str) -> str:
    """A folder-relative POSIX path without empty or `.` parts."""
    return "/".join(p for p in path.replace("\\", "/").split("/") if p not in ("", "."))


@dataclass(frozen=True)
class Rules:
    """The ignore rules and excluded subtrees in force for one pass."""

    spec: pathspec.GitIgnoreSpec
    excluded: tuple[str, ...] = ()

    @classmethod
    def build(cls, ignore_text: str = "", excluded: Iterable[str] = ()) -> Rules:
        lines = [*DEFAULTS, *ignore_text.splitlines()]
        return cls(pathspec.GitIgnoreSpec.from_lines(lines),
                   tuple(sorted({normalise(e) for e in excluded if normalise(e)})))

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        if rel == IGNORE_FILE:
            return False
        return self.spec.match_file(rel + "/" if is_dir else rel)

    def excluded_by(self, rel: str) -> str | None:
        """The excluded subtree `rel` is in (or is), if any."""
        return next((e for e in self.excluded if rel == e or rel.startswith(e + "/")), None)

    def withheld(self, rel: str, is_dir: bool = False) -> str | None:
        """Why `rel` does not sync on this device ("ignored", "excluded"), or None."""
        if self.excluded_by(rel) is not None:
            return "excluded"
        if self.ignored(rel, is_dir):
            return "ignored"
        return None
