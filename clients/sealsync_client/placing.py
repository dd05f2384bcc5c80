"""Putting remote versions into the folder without losing a local byte.

The rules (docs/CLIENT.md, "How a sync pass decides" and "What sync does
with odd files"):

* A download never replaces a local edit that has not been uploaded: the
  local file moves aside to `name (conflicted copy from DEVICE DATE).ext`.
* Whatever blocks a download's place is moved aside, never overwritten: a
  file (or a link) where a directory must go is renamed as a conflict
  copy; a directory where the file must go stays, and the file is placed
  beside it under a conflict name that is then uploaded as its new name.
* A parent that is a symbolic link is never written, read or deleted through: it could
  lead out of the folder.
* A remote delete removes the local file only if it is unchanged since the
  last sync.
* A stored name this file system cannot hold is placed under a visibly
  changed name (names.local_name); the stored name is remembered, so an
  unchanged local name never uploads a rename.
"""
from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .fingerprint import NotAFile, fingerprint, hash_file, placed
from .names import (
    POSIX,
    Profile,
    check_stored,
    conflict_name,
    local_name,
    parents,
    shown,
    stored_name,
)
from .pipeline import PART_SUFFIX, remove_stale_parts
from .state import Entry, State

if TYPE_CHECKING:
    from .download import Version
    from .report import Report
    from .transfer import Transfer

Event = Callable[[str, str], None]


def is_file(path: Path) -> bool:
    """A regular file, not a link to one."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class Placer:
    def __init__(self, root: Path, state: State, device: str, transfer: Transfer,
                 on_event: Event, tmp: Path, profile: Profile = POSIX) -> None:
        self.root, self.state, self.device, self.transfer = root, state, device, transfer
        self.on_event, self.tmp, self.profile = on_event, tmp, profile

    def unchanged(self, e: Entry) -> bool:
        """Is the file at e.path exactly what we last synced? (gone = no edit;
        so is a file replaced by a directory: nothing of it is left here)"""
        try:
            return fingerprint(self.root / e.path, e.fp).hash == e.fp.hash and not e.dirty
        except (FileNotFoundError, NotADirectoryError, NotAFile):
            return True

    def taken(self, rel: str) -> bool:
        return os.path.lexists(self.root / rel)

    def through_link(self, rel: str) -> bool:
        """Does `rel` lead through a symbolic link (a directory swapped for
        one)? Then it may point out of the folder: never read, write or
        delete there."""
        return any((self.root / p).is_symlink() for p in parents(rel))

    def remote_delete(self, entry: Entry, report: Report) -> None:
        path = self.root / entry.path
        if not self.through_link(entry.path) and is_file(path) and self.unchanged(entry):
            path.unlink()
            self.prune(path.parent)
            report.deleted_here.append(shown(entry.path))
            self.on_event("deleted here", shown(entry.path))
        # An edited file stays; without a row it is uploaded as a new file.
        self.state.forget(entry.file_id)

    def moved_here(self, v: Version, entry: Entry) -> bool:
        """Is `v` a rename elsewhere of a file that was moved or deleted here
        and not pushed yet? Then this device's push decides, through the
        server's conflict answer: the first rename committed wins, and a
        delete loses to the rename (engine.py)."""
        assert v.manifest is not None
        if entry.stored == v.manifest.path or os.path.lexists(self.root / entry.path):
            return False
        if v.manifest.size != entry.fp.size:
            return False
        tmp = self._fetch(v)
        same = hash_file(tmp) == entry.fp.hash
        tmp.unlink()
        return same

    def _fetch(self, v: Version) -> Path:
        tmp = self.tmp / v.file_id
        self.transfer.download(v, tmp)
        return tmp

    def write_version(self, v: Version, entry: Entry | None, report: Report) -> str | None:
        """Download `v` into place. Returns the name of an untracked conflict
        copy it made of a local edit (which the caller may upload at once)."""
        assert v.manifest is not None
        stored = check_stored(v.manifest.path)
        if entry is not None and entry.stored == stored and not entry.dirty:
            rel = entry.path  # keep this device's spelling of an unchanged name
        else:
            rel = local_name(stored, self.profile)
        tmp = self._fetch(v)
        digest = hash_file(tmp)
        copy = None
        ours = False  # is what sits at `rel` our copy of this file, safe to replace?
        if entry is not None and self.through_link(entry.path):
            self.state.forget(entry.file_id)  # what was ours there is out of reach now
        elif entry is not None:
            old = self.root / entry.path
            if is_file(old) and not self.unchanged(entry):
                if entry.path == rel and hash_file(old) == digest:
                    ours = True  # the same edit made on both sides: nothing to keep
                elif entry.path == rel:  # edited here, not uploaded: keep it beside
                    copy = self.set_aside(rel, report, tracked=None)
                # (renamed remotely but edited here: the edit stays at the old
                #  name and, untracked now, is uploaded as a new file)
            elif is_file(old) and entry.path != rel:
                old.unlink()
                self.prune(old.parent)
            else:
                ours = entry.path == rel
            self.state.forget(entry.file_id)
        rel, moved = self._make_room(rel, report)
        dest = self.root / rel
        if os.path.lexists(dest) and not ours:
            other = self.state.by_path(rel)
            if not is_file(dest) or fingerprint(dest, other.fp if other else None).hash != digest:
                made = self.set_aside(rel, report, tracked=other)
                copy = copy if other is not None else made
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
        self.state.put(Entry(rel, v.file_id, v.revision, placed(dest, digest), dirty=moved,
                             stored="" if moved else stored))
        report.downloaded.append(shown(rel))
        self.on_event("downloaded", shown(rel))
        return copy

    def _make_room(self, rel: str, report: Report) -> tuple[str, bool]:
        """Clear the way to `rel`; (where the file goes, whether that is a
        conflict name because a directory holds `rel`)."""
        for parent in parents(rel):
            path = self.root / parent
            if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
                self.set_aside(parent, report, tracked=self.state.by_path(parent))
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        twin = self._twin(rel)
        if twin is not None:  # "café" in NFD here, "café" in NFC arriving: one name
            self.set_aside(twin, report, tracked=self.state.by_path(twin))
        dest = self.root / rel
        if dest.is_dir() and not dest.is_symlink():
            rel = conflict_name(rel, self.device, self.taken)
            report.conflicts.append(shown(rel))
            self.on_event("conflict", shown(rel))
            return rel, True
        return rel, False

    def _twin(self, rel: str) -> str | None:
        """Another spelling of `rel` in its folder that stores as the same
        name (only names beyond ASCII have other spellings)."""
        head, _, leaf = rel.rpartition("/")
        if leaf.isascii():
            return None
        want = stored_name(leaf)
        for name in os.listdir(self.root / head if head else self.root):
            if name != leaf and not name.isascii() and stored_name(name) == want:
                return f"{head}/{name}" if head else name
        return None

    def set_aside(self, rel: str, report: Report, tracked: Entry | None) -> str:
        """Move a local file out of the way as a conflict copy. An untracked
        copy is uploaded as a new file; a tracked one keeps its file id and
        uploads the new name (dirty)."""
        copy = conflict_name(rel, self.device, self.taken)
        os.rename(self.root / rel, self.root / copy)
        if tracked is not None:
            self.state.put(Entry(copy, tracked.file_id, tracked.revision, tracked.fp,
                                 dirty=True))
        report.conflicts.append(shown(copy))
        self.on_event("conflict", shown(copy))
        return copy

    def prune(self, folder: Path) -> None:
        """Remove directories a remote delete or rename left empty."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

    def clean_tmp(self) -> None:
        """Before a pull: remove what an interrupted pass left in
        .sealsync/tmp, except partial downloads, which the pull resumes."""
        for path in self.tmp.iterdir():
            if not path.name.endswith(PART_SUFFIX):
                with contextlib.suppress(OSError):
                    path.unlink()

    def clean_parts(self) -> None:
        """After a pull: drop partial downloads no version wants any more
        (the ones to retry are kept, and resume on the next pass)."""
        remove_stale_parts(self.tmp, keep=[self.tmp / f for f, *_ in self.state.unplaced()])


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
