"""What this device keeps out of its folder: ignored paths and excluded
subtrees (ignore.py decides which paths; this keeps the books).

* The excluded subtrees live in the folder's state (meta `excluded`); the
  ignore rules in `DIR/.sealsyncignore`, read afresh on every pass.
* A remote version whose path is withheld here is verified like any other
  (the feed cursor moves past it) but not placed: it is recorded in the
  `held` table instead. When its path stops being withheld (`sealsync
  include`, or a rule taken out) the next pull fetches its head and places
  it as usual.
* Nothing withheld is ever deleted here by a remote change: a file in a
  withheld place stays as it is. A tracked, unchanged file that a remote
  rename moves into a withheld place leaves this device, as a remote
  delete would; an edited one stays and uploads as a new file.
* `exclude` removes a subtree's local copy only once it is fully synced:
  it syncs first, refuses if anything under the path is still unsynced,
  and removes only files unchanged since that sync.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SealsyncClientError
from .ignore import IGNORE_FILE, Rules, normalise
from .names import META_DIR, from_bytes, shown, to_bytes
from .placing import Placer, is_file
from .state import Entry, State

if TYPE_CHECKING:
    from .download import Version
    from .report import Report

MAX_IGNORE_BYTES = 1024 * 1024
_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    file_id TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    path BLOB NOT NULL  -- the stored name (names.to_bytes)
);
"""


class BadSelection(SealsyncClientError):
    """An exclude or include that cannot be done as asked (exit code 2)."""


def read_rules_text(root: Path) -> str:
    """The folder's `.sealsyncignore` (empty when there is none)."""
    path = root / IGNORE_FILE
    try:
        if not is_file(path):
            return ""
        with open(path, "rb") as f:
            data = f.read(MAX_IGNORE_BYTES + 1)
    except FileNotFoundError:
        return ""
    except OSError as exc:  # rules we cannot read could let private files out
        raise SealsyncClientError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_IGNORE_BYTES:
        raise SealsyncClientError(f"{path} is larger than 1 MiB: not read")
    return data.decode("utf-8", "surrogateescape")


class Withheld:
    def __init__(self, root: Path, state: State, place: Placer) -> None:
        self.root, self.state, self.place = root, state, place
        state.db.executescript(_SCHEMA)
        self.current = Rules.build()

    # -- the rules ----------------------------------------------------------------
    def excluded(self) -> list[str]:
        return list(json.loads(self.state.get("excluded", "[]") or "[]"))

    def set_excluded(self, paths: list[str]) -> None:
        self.state.set("excluded", json.dumps(sorted(set(paths))))

    def rules(self) -> Rules:
        """Read the rules in force now (and remember them for the pull)."""
        self.current = Rules.build(read_rules_text(self.root), self.excluded())
        return self.current

    # -- remote versions not placed here -------------------------------------------
    def hold(self, file_id: str, revision: int, path: str) -> None:
        self.state.db.execute("INSERT OR REPLACE INTO held VALUES (?, ?, ?)",
                              (file_id, revision, to_bytes(path)))

    def drop(self, file_id: str) -> None:
        self.state.db.execute("DELETE FROM held WHERE file_id = ?", (file_id,))

    def held(self) -> list[tuple[str, int, str]]:
        rows = self.state.db.execute("SELECT file_id, revision, path FROM held "
                                     "ORDER BY path").fetchall()
        return [(r[0], r[1], from_bytes(r[2])) for r in rows]

    def release(self, head: Callable[[str], Version | None],
                apply: Callable[[Version, Report], None], report: Report) -> None:
        """Place the held versions whose path the current rules no longer
        withhold (`include`, or a rule taken out): their heads, fetched and
        verified by `head`, applied by `apply` as any remote version."""
        for file_id, _, path in self.held():
            if self.current.withheld(path) is None:
                version = head(file_id)
                self.drop(file_id)
                if version is not None:
                    apply(version, report)

    def intercept(self, v: Version, entry: Entry | None, report: Report) -> bool:
        """Keep a remote version out of a withheld place; True if it was."""
        rules = self.current
        if v.manifest is None or v.manifest.tombstone:
            self.drop(v.file_id)
            if entry is not None and rules.withheld(entry.path) is not None:
                self.state.forget(entry.file_id)  # the local file stays as it is
                return True
            return False
        path = v.manifest.path
        if rules.withheld(path) is None:
            self.drop(v.file_id)  # e.g. moved out of an excluded subtree: placed as usual
            return False
        if entry is not None:
            if rules.withheld(entry.path) is None:
                self.place.remote_delete(entry, report)  # moved into a withheld place
            else:
                self.state.forget(entry.file_id)  # ignored here: the local file stays
        self.hold(v.file_id, v.revision, path)
        report.held.append(shown(path))
        self.place.on_event("not placed here", shown(path))
        return True


@dataclass
class Excluded:
    """What `exclude` did: files removed here, and what stopped it."""

    path: str
    removed: list[str] = field(default_factory=list)
    unsynced: list[str] = field(default_factory=list)


def relative(root: Path, path: str) -> str:
    """PATH as given on the command line: relative to the folder, or an
    absolute path inside it."""
    p = Path(path)
    if p.is_absolute():
        try:
            path = p.resolve().relative_to(root).as_posix()
        except ValueError:
            raise BadSelection(f"{path} is not inside {root}") from None
    rel = normalise(path)
    if not rel or ".." in rel.split("/"):
        raise BadSelection(f"{path!r}: give a path inside the folder")
    if rel == META_DIR or rel.startswith(META_DIR + "/"):
        raise BadSelection(f"{rel} is this device's own state, not a synced path")
    return rel


def under(rel: str, top: str) -> bool:
    return rel == top or rel.startswith(top + "/")


def exclude(w: Withheld, rel: str) -> Excluded:
    """Exclude `rel`, right after a sync pass: if a file under it is not
    synced (new or edited, its upload failed or it changed since), nothing
    is excluded and `unsynced` lists them."""
    if rel == IGNORE_FILE:
        raise BadSelection(f"{IGNORE_FILE} cannot be excluded: every device needs the rules")
    done = Excluded(rel)
    rules = w.rules()
    entries = {p: e for p, e in w.state.entries().items() if under(p, rel)}
    for dirpath, _, names in os.walk(w.root / rel):
        for name in names:
            local = Path(dirpath, name).relative_to(w.root).as_posix()
            entry = entries.get(local)
            if rules.ignored(local) or not is_file(w.root / local):
                continue  # never synced: stays, as ignored files do
            if entry is None or not w.place.unchanged(entry):
                done.unsynced.append(shown(local))
    if is_file(w.root / rel):
        entry = entries.get(rel)
        if entry is None or not w.place.unchanged(entry):
            done.unsynced.append(shown(rel))
    if done.unsynced:
        done.unsynced = sorted(set(done.unsynced))
        return done
    w.set_excluded([*w.excluded(), rel])
    for path, entry in sorted(entries.items()):
        there = w.root / path
        if is_file(there) and not w.place.unchanged(entry):
            continue  # edited this very moment: it stays, tracked, and is listed
        if is_file(there):
            there.unlink()
            w.place.prune(there.parent)
            done.removed.append(shown(path))
        w.state.forget(entry.file_id)
        w.hold(entry.file_id, entry.revision, entry.stored)
    return done


def include(w: Withheld, rel: str) -> list[str]:
    """Stop excluding `rel` and every excluded subtree inside it; the next
    pull places what was held there. Returns the subtrees included."""
    excluded = w.excluded()
    inside = [e for e in excluded if under(e, rel)]
    if not inside:
        outer = next((e for e in excluded if under(rel, e)), None)
        if outer is not None:
            raise BadSelection(f"{shown(rel)} is inside the excluded {shown(outer)}: "
                               f"include {shown(outer)}")
        raise BadSelection(f"{shown(rel)} is not excluded")
    w.set_excluded([e for e in excluded if e not in inside])
    return inside
