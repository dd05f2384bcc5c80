"""`sealsync exclude`, `include` and `conflicts`, and the parts of `sync
--dry-run` and `status --ignored` that cli.py hands over (registered on the
`sealsync` group by cli.py).

    sealsync exclude DIR PATH     keep PATH on the server only, on this device
    sealsync include DIR PATH     bring it back
    sealsync conflicts DIR [--resolve keep-mine|keep-theirs PATH]

Exit codes as cli.py documents them; a path or a choice that cannot be
used is a usage error (2), and `exclude` refusing because something under
PATH is not synced yet is 1 (nothing was changed).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from . import conflicts as conflict_copies
from . import dryrun, selective
from .cli import _emit, _errors, _fail, _opened, _printer, _summary
from .engine import Engine
from .folder import Folder
from .names import shown
from .scan import Scan


@contextmanager
def _usage() -> Iterator[None]:
    """A path or a choice that cannot be used: one line, exit code 2."""
    try:
        yield
    except (selective.BadSelection, conflict_copies.CannotResolve) as exc:
        _fail(str(exc), 2)


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("path")
def exclude(as_json: bool, folder_dir: str, path: str) -> None:
    """Keep PATH (relative to DIR) on the server only, on this device.

    Syncs first; removes the local copy only if everything under PATH is
    synced, else changes nothing and says what is not (exit 1)."""
    with _errors(), _usage(), _opened(folder_dir) as folder:
        engine = folder.engine(_printer(as_json))
        rel = selective.relative(folder.root, path)
        report = engine.sync()
        done = selective.exclude(engine.withheld, rel)
        data = {"excluded": shown(rel), "removed": done.removed, "unsynced": done.unsynced,
                "done": not done.unsynced, **report.as_dict()}
        if done.unsynced:
            _emit(as_json, data, f"{shown(rel)} was NOT excluded: not synced yet:\n"
                  + "\n".join(f"  {p}" for p in done.unsynced)
                  + "\n(see the errors of `sealsync sync`; nothing was removed)")
            sys.exit(1)
        _emit(as_json, data, f"{shown(rel)} is now on the server only, on this device "
                             f"({len(done.removed)} local file(s) removed; "
                             f"`sealsync include` brings it back)")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("path")
def include(as_json: bool, folder_dir: str, path: str) -> None:
    """Sync PATH (relative to DIR) on this device again, and download it."""
    with _errors(), _usage(), _opened(folder_dir) as folder:
        engine = folder.engine(_printer(as_json))
        rel = selective.relative(folder.root, path)
        included = selective.include(engine.withheld, rel)
        report = engine.sync()
        _emit(as_json, {"included": [shown(p) for p in included], **report.as_dict()},
              f"included {', '.join(shown(p) for p in included)}; {_summary(report)}")
        if report.errors:
            sys.exit(1)


@click.command()
@click.option("--resolve", nargs=2, type=(click.Choice(conflict_copies.KEEP), str),
              metavar="keep-mine|keep-theirs PATH",
              help="settle one: keep the copy's version (mine) or the original's (theirs)")
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def conflicts(resolve: tuple[str, str] | None, as_json: bool, folder_dir: str) -> None:
    """List the conflict copies in DIR, or settle one with --resolve.

    Settling syncs first, then makes an ordinary change that is uploaded:
    the version dropped stays in the file's history."""
    with _errors(), _usage(), _opened(folder_dir) as folder:
        engine = folder.engine(_printer(as_json))
        if resolve is None:
            copies = conflict_copies.find(engine.scan().files)
            rows = [c.as_dict(folder.root) for c in copies]
            lines = [f"  {c['path']}\n      from {c['device']} on {c['date']}, kept aside "
                     f"from {c['original']}" + ("" if c["original_exists"] else " (gone)")
                     for c in rows]
            _emit(as_json, {"conflicts": rows}, "\n".join(lines) or "no conflict copies")
            return
        keep, path = resolve
        _resolve(folder, engine, keep, selective.relative(folder.root, path), as_json)


def _resolve(folder: Folder, engine: Engine, keep: str, rel: str, as_json: bool) -> None:
    first = engine.sync()
    copy = conflict_copies.pick(conflict_copies.find(engine.scan().files), rel)
    for p in (copy.path, copy.original):
        entry = folder.state.by_path(p)
        there = (folder.root / p).is_file()
        if there and (entry is None or not engine.place.unchanged(entry)):
            raise conflict_copies.CannotResolve(
                f"{shown(p)} has changes that are not synced yet: {'; '.join(first.errors)}")
    conflict_copies.settle(folder.root, copy, keep)
    report = engine.sync()
    kept = copy.path if keep == "keep-mine" else copy.original
    _emit(as_json, {"resolved": copy.path, "original": copy.original, "kept": keep,
                    **report.as_dict()},
          f"settled {copy.original}: kept the version of {kept}; {_summary(report)}")
    if report.errors:
        sys.exit(1)


def dry_run(folder: Folder, as_json: bool) -> None:
    """`sync --dry-run`: print what a pass would do (dryrun.py)."""
    plan = dryrun.plan(folder.engine())
    _emit(as_json, plan.as_dict(), dryrun.text(plan))


def withheld_status(engine: Engine, found: Scan, listed: bool) -> tuple[dict[str, Any],
                                                                          list[str]]:
    """`status`: the excluded subtrees; with --ignored, every withheld local
    path and every remote file held (not placed) here."""
    data: dict[str, Any] = {"excluded": [shown(p) for p in engine.withheld.excluded()]}
    lines = [f"  excluded  {p}  (on the server only, on this device)" for p in data["excluded"]]
    if listed:
        data["ignored"] = [{"path": shown(p), "reason": why} for p, why in found.withheld]
        data["held"] = [shown(p) for _, _, p in engine.withheld.held()]
        lines += [f"  {why:<9} {shown(p)}" for p, why in found.withheld]
        lines += [f"  held      {p}  (on the server, not placed here)" for p in data["held"]]
    return data, lines


COMMANDS: tuple[click.Command, ...] = (exclude, include, conflicts)
