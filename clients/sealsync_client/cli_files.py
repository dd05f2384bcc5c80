"""`sealsync status`, `history` and `restore`: where the folder's files
stand here, a file's revisions on the server, and bringing one back.

    sealsync status DIR          what would be uploaded, and where the folder stands
    sealsync history DIR PATH    a file's revisions
    sealsync restore DIR PATH --revision N

Registered on the `sealsync` group by cli.py, whose error handling and
output (`_errors`, `_opened`, `_emit`) these use; exit codes as cli.py
documents them.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from . import cli_sync_extras
from .cli import _emit, _errors, _opened, _printer, _summary
from .cli_ops import no_remember_option
from .fingerprint import fingerprint
from .folder import Folder
from .names import shown
from .restore import restore_revision
from .state import Entry, NotInitialised


@click.command()
@no_remember_option
@click.option("--ignored", is_flag=True, help="also list what is ignored or held here")
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def status(no_remember: bool, ignored: bool, as_json: bool, folder_dir: str) -> None:
    """What changed locally since the last sync (nothing is sent)."""
    with _errors(), _opened(folder_dir, not no_remember) as folder:
        engine = folder.engine()
        entries = folder.state.entries()
        found = engine.scan()
        local = found.files
        changed = sorted(p for p, e in entries.items() if p in local and _edited(local[p], e))
        data: dict[str, Any] = {"folder": str(folder.root), "server": folder.config.server,
                "user_id": folder.config.user_id, "device": folder.config.device_name,
                "synced_files": len(entries), "cursor": folder.state.cursor,
                "new": _shown(set(local) - set(entries)), "modified": _shown(changed),
                "missing": _shown(p for p in set(entries) - set(local) if not found.hides(p)),
                "skipped": [{"path": shown(p), "reason": why} for p, why in found.skipped],
                "unplaced": [{"path": shown(p), "revision": rev, "reason": why}
                             for _, rev, p, why in folder.state.unplaced()]}
        data["refused"] = [
            {"seq": seq, "file_id": fid, "revision": rev, "reason": why,
             "path": shown(e.path) if (e := folder.state.by_file_id(fid)) else None}
            for seq, fid, rev, why in folder.state.refused()]
        seq, chain = engine.history.fingerprint()
        # Equal on two devices at the same seq iff the server showed both the
        # same history: compare out of band to catch a fork or a freeze.
        data["history"] = {"seq": seq, "fingerprint": chain}
        lines = [f"{data['folder']}: {len(entries)} synced file(s), device "
                 f"{data['device']!r}, account {data['user_id']}"]
        for key in ("new", "modified", "missing"):
            lines += [f"  {key:<9} {p}" for p in data[key]]
        if len(lines) == 1:
            lines.append("  nothing to upload")
        withheld, more = cli_sync_extras.withheld_status(engine, found, ignored)
        data.update(withheld)
        lines += more
        lines += [f"  skipped   {s['path']}  ({s['reason']})" for s in data["skipped"]]
        lines += [f"  not here  {u['path']}  (revision {u['revision']} cannot be written "
                  f"here: {u['reason']}; retried on every sync)" for u in data["unplaced"]]
        lines += [f"  refused   change {r['seq']}: {r['path'] or 'file ' + r['file_id']} "
                  f"revision {r['revision']} ({r['reason']}; skipped)" for r in data["refused"]]
        lines.append(f"  history   verified to change {seq}, fingerprint {chain[:16]} "
                     f"(the same on every device at change {seq})")
        _emit(as_json, data, "\n".join(lines))


def _edited(path: Path, e: Entry) -> bool:
    try:
        return e.dirty or fingerprint(path, e.fp).hash != e.fp.hash
    except OSError:
        return True


def _shown(paths: Iterable[str]) -> list[str]:
    return sorted(shown(p) for p in paths)


def _when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch or 0))


def _entry(folder: Folder, path: str) -> Entry:
    """The synced file PATH (relative to the folder) names."""
    rel = "/".join(p for p in path.split("/") if p not in ("", "."))
    entry = folder.state.by_path(rel) if rel else None
    if entry is None:
        raise NotInitialised(f"{shown(path)} is not a synced file in {folder.root}")
    return entry


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("path")
def history(as_json: bool, folder_dir: str, path: str) -> None:
    """The revisions of PATH (relative to DIR), newest first."""
    with _errors(), _opened(folder_dir) as folder:
        file_id = _entry(folder, path).file_id
        transfer = folder.engine().transfer
        rows = []
        for rev in folder.api.revisions(file_id):
            m = None if rev["deleted"] else transfer.version(file_id, rev["revision"]).manifest
            rows.append({"revision": rev["revision"], "deleted": rev["deleted"],
                         "committed_at": rev.get("committed_at"),
                         "path": shown(m.path) if m else None, "size": m.size if m else 0,
                         "device": m.device if m else None,
                         # the retention window (docs/CLIENT.md "How long versions stay")
                         "expired_at": rev.get("expired_at"),
                         "expires_at": rev.get("expires_at")})
        text = "\n".join(
            f"  r{r['revision']:<4} {_when(r['committed_at'])}"
            f"  {'deleted' if r['deleted'] else str(r['size']) + ' bytes':>14}"
            f"  {r['path'] or ''}  ({r['device'] or '?'}){_kept(r)}" for r in rows)
        _emit(as_json, {"file_id": file_id, "revisions": rows}, text)


def _kept(row: dict[str, Any]) -> str:
    """How long a revision stays restorable, as `history` shows it."""
    if row["expired_at"] is not None:
        return f"  expired {_when(row['expired_at'])}: cannot be restored"
    if row["expires_at"] is not None:
        return f"  restorable until {_when(row['expires_at'])}"
    return ""


@click.command()
@click.option("--revision", type=click.IntRange(min=1), required=True)
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("path")
def restore(revision: int, as_json: bool, folder_dir: str, path: str) -> None:
    """Bring back revision N of PATH, as a new revision (then sync)."""
    with _errors(), _opened(folder_dir) as folder:
        engine = folder.engine(_printer(as_json))
        entry = _entry(folder, path)
        dest = folder.root / entry.path
        if dest.exists() and _edited(dest, entry):
            raise NotInitialised(f"{shown(path)} has local edits that are not synced yet: "
                                 "run `sealsync sync` first")
        restore_revision(engine, entry.file_id, revision, dest, shown(path))
        report = engine.sync()
        _emit(as_json, {"restored": shown(path), "revision": revision, **report.as_dict()},
              f"restored {shown(path)} from revision {revision}; {_summary(report)}")


COMMANDS: tuple[click.Command, ...] = (status, history, restore)
