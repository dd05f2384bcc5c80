"""`sealsync sync --dry-run`: what a pass would do, with nothing changed.

It reads what a pass reads (the change feed from the folder's cursor, the
manifests it lists, the folder) and writes nothing: not the folder, not
state.db (no cursor, no history, no token: a token the server refreshes is
not stored), not the server (nothing is uploaded; GETs only).

It is a forecast, not a promise: the real pass also verifies the signed
history (history.py) and refuses what fails, and either side may change
in between. The same rules decide (engine.py, placing.py, selective.py):
a remote delete removes only an unchanged file, a local edit meets a
remote one as a conflict copy, a withheld path is held, not placed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .fingerprint import fingerprint
from .names import local_name, shown
from .placing import is_file
from .progress import size_of
from .report import reason
from .state import Entry

if TYPE_CHECKING:
    from .download import Version
    from .engine import Engine
    from .ignore import Rules


@dataclass
class Plan:
    upload: list[str] = field(default_factory=list)
    download: list[str] = field(default_factory=list)
    rename_here: list[str] = field(default_factory=list)  # renamed remotely: "old -> new"
    rename_remote: list[str] = field(default_factory=list)  # renamed here: "old -> new"
    delete_here: list[str] = field(default_factory=list)
    delete_remote: list[str] = field(default_factory=list)
    move_aside: list[str] = field(default_factory=list)  # local files kept as conflict copies
    held: list[str] = field(default_factory=list)  # remote, withheld here: not placed
    errors: list[str] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": True, **{k: (list(v) if isinstance(v, list) else v)
                                    for k, v in self.__dict__.items()}}


LABELS = {"upload": "upload", "download": "download", "rename_here": "rename here",
          "rename_remote": "rename on the server", "delete_here": "delete here",
          "delete_remote": "delete on the server", "move_aside": "move aside (conflict copy)",
          "held": "not placed (ignored or excluded here)", "errors": "error"}


def text(plan: Plan) -> str:
    data = plan.as_dict()
    lines = [f"  {LABELS[k] + ':':<28} {p}" for k in LABELS for p in data[k]]
    if not lines:
        return "dry run: nothing to do"
    return "\n".join([f"dry run (nothing was changed): {len(plan.upload)} to upload "
                      f"({plan.bytes_up} bytes), {len(plan.download)} to download "
                      f"({plan.bytes_down} bytes)", *lines])


def plan(engine: Engine) -> Plan:
    """What `engine.sync()` would do now."""
    api = engine.transfer.api
    keep, api.on_token = api.on_token, None  # a refreshed token is not stored
    try:
        out = Plan()
        rules = engine.withheld.rules()
        aside = _remote(engine, rules, out)
        _local(engine, out, aside)
        return out
    finally:
        api.on_token = keep


def _remote(engine: Engine, rules: Rules, out: Plan) -> set[str]:
    """Plan the pull; returns the local paths it would move aside."""
    state = engine.state
    latest: dict[str, Version] = {}
    for file_id, _, path in engine.withheld.held():
        if rules.withheld(path) is None:  # included again, or a rule taken out
            latest[file_id] = engine.transfer.version(file_id)
    for file_id, revision, _, _ in state.unplaced():
        latest[file_id] = engine.transfer.version(file_id, revision)
    cursor = state.cursor
    while True:
        page = engine.transfer.api.changes(cursor, limit=500)
        for c in page["changes"]:
            file_id, revision = str(c["file_id"]), int(c["revision"])
            entry = state.by_file_id(file_id)
            mine = state.verified(file_id, revision)
            if c["deleted"] or (entry is not None and entry.revision >= revision) or (
                    mine is not None and mine.device_id == engine.history.device_id):
                continue  # ours coming back, or a server delete the pass refuses
            latest[file_id] = engine.transfer.version(file_id, revision)
        cursor = int(page["cursor"])
        if not page["has_more"]:
            break
    aside: set[str] = set()
    for file_id, v in sorted(latest.items(), key=lambda kv: str(kv[1].manifest and
                                                                 kv[1].manifest.path)):
        _one(engine, rules, v, state.by_file_id(file_id), out, aside)
    return aside


def _one(engine: Engine, rules: Rules, v: Version, entry: Entry | None, out: Plan,
         aside: set[str]) -> None:
    place = engine.place
    if v.manifest is None or v.manifest.tombstone:
        if entry is not None and rules.withheld(entry.path) is None and \
                is_file(engine.root / entry.path) and place.unchanged(entry):
            out.delete_here.append(shown(entry.path))
        return
    path = v.manifest.path
    if rules.withheld(path) is not None:
        out.held.append(shown(path))
        if entry is not None and rules.withheld(entry.path) is None and \
                is_file(engine.root / entry.path) and place.unchanged(entry):
            out.delete_here.append(shown(entry.path))
        return
    rel = entry.path if entry is not None and entry.stored == path \
        else local_name(path, place.profile)
    if entry is not None and entry.path != rel:
        out.rename_here.append(f"{shown(entry.path)} -> {shown(rel)}")
    edited = entry is not None and is_file(engine.root / entry.path) and \
        not place.unchanged(entry)
    if edited and entry is not None and entry.path == rel:
        aside.add(rel)
        out.move_aside.append(shown(rel))
    elif os.path.lexists(engine.root / rel) and (entry is None or entry.path != rel):
        aside.add(rel)
        out.move_aside.append(shown(rel) + " (unless it holds the same bytes)")
    out.download.append(shown(rel))
    out.bytes_down += size_of(v)


def _local(engine: Engine, out: Plan, aside: set[str]) -> None:
    """Plan the push, as engine.push plans it, without recording anything."""
    found = engine.scan()
    entries = engine.state.entries()
    vanished = {p: e for p, e in entries.items() if p not in found.files and not found.hides(p)}
    by_hash = {e.fp.hash: e for e in vanished.values()}
    for rel in sorted(found.files):
        entry = entries.get(rel)
        try:
            fp = fingerprint(found.files[rel], entry.fp if entry else None)
        except OSError as exc:
            out.errors.append(f"{shown(rel)}: cannot be read: {reason(exc)}")
            continue
        if rel in aside:  # the pull keeps it as a conflict copy, then uploads that
            out.upload.append(f"{shown(rel)} (as its conflict copy)")
            out.bytes_up += fp.size
        elif entry is None:
            moved = by_hash.pop(fp.hash, None)
            if moved is not None and vanished.pop(moved.path, None) is not None:
                out.rename_remote.append(f"{shown(moved.path)} -> {shown(rel)}")
            else:
                out.upload.append(shown(rel))
                out.bytes_up += fp.size
        elif fp.hash != entry.fp.hash or entry.dirty:
            out.upload.append(shown(rel))
            out.bytes_up += fp.size
    out.delete_remote += sorted(shown(p) for p in vanished)
