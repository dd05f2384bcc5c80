"""Walking a sync folder: which files sync, and what is left out and why.

Only regular files sync. Symbolic links, FIFOs, sockets, device files and
empty directories are listed with a reason (`sealsync status` shows them),
never followed and never read: a FIFO would block a read, and a link could
lead out of the folder. A directory that cannot be listed is reported, and
its tracked files count as unknown, not as deleted.

Paths the ignore rules or an excluded subtree withhold (ignore.py) are
listed apart (`sealsync status --ignored`); a withheld directory is not
walked. A tracked file that is withheld counts as unknown too: it is never
uploaded, and never deleted on the server because it is left out here.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .ignore import Rules
from .names import META_DIR

_KINDS = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "device file"),
          (stat.S_ISBLK, "device file"))


@dataclass
class Scan:
    files: dict[str, Path] = field(default_factory=dict)  # relative POSIX path -> path
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unreadable: list[str] = field(default_factory=list)  # directories not listed
    withheld: list[tuple[str, str]] = field(default_factory=list)  # (path, why) not synced
    rules: Rules | None = None

    def hides(self, rel: str) -> bool:
        """Could `rel` exist in a directory this scan could not read, or is
        it withheld here (ignored or excluded)? Either way its absence is
        no delete."""
        if self.rules is not None and self.rules.withheld(rel) is not None:
            return True
        return any(d == "" or rel.startswith(d + "/") for d in self.unreadable)


def scan(root: Path, rules: Rules | None = None) -> Scan:
    """Every regular file under `root` (but `.sealsync/` and what `rules`
    withhold), by relative path."""
    found = Scan(rules=rules)
    todo = [(root, "")]
    while todo:
        folder, prefix = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            found.skipped.append((prefix or ".", f"cannot be read: {exc.strerror}"))
            found.unreadable.append(prefix)
            continue
        if not entries and prefix:
            found.skipped.append((prefix, "empty directory: not synced"))
        for entry in entries:
            if not prefix and entry.name == META_DIR:
                continue
            rel = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                why = None if rules is None else rules.withheld(
                    rel, entry.is_dir(follow_symlinks=False))
                if why is not None:
                    found.withheld.append((rel, why))
                elif entry.is_symlink():
                    found.skipped.append((rel, "symbolic link: not synced"))
                elif entry.is_dir(follow_symlinks=False):
                    todo.append((Path(entry.path), rel))
                elif entry.is_file(follow_symlinks=False):
                    found.files[rel] = Path(entry.path)
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    kind = next((k for test, k in _KINDS if test(mode)), "special file")
                    found.skipped.append((rel, f"{kind}: not synced"))
            except OSError as exc:
                found.skipped.append((rel, f"cannot be read: {exc.strerror}"))
    found.skipped.sort()
    found.withheld.sort()
    return found
