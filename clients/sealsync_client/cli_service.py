"""`sealsync service install|status|uninstall`, and the record of each
pass that `service status` shows (kept in the folder's state.db, so it
needs no key to read)."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from .engine import Report
from .errors import KeyfileError, SealsyncClientError
from .service import Platform, Runner, installed, run
from .state import Config, NotInitialised, State

LAST_PASS = "last_pass"


@contextmanager
def recorded(state: State) -> Iterator[Callable[[Report], Report]]:
    """Record the pass run inside: `report = done(engine.sync())` records
    its outcome; an error escaping the block is recorded, then re-raised."""
    def done(report: Report) -> Report:
        counts = {k: len(v) for k, v in report.as_dict().items() if v and isinstance(v, list)}
        quota = [report.quota_line()] if report.over_quota else []
        _save(state, {"ok": not report.errors and not quota, "counts": counts,
                      "errors": (quota + [str(e) for e in report.errors])[:5]})
        return report

    try:
        yield done
    except Exception as exc:
        _save(state, {"ok": False, "failed": f"{type(exc).__name__}: {exc}"})
        raise


def _save(state: State, outcome: dict[str, Any]) -> None:
    state.set(LAST_PASS, json.dumps({"at": int(time.time()), **outcome}, sort_keys=True))


def last_pass(folder: Path) -> dict[str, Any] | None:
    if not Config.path(folder).exists():
        return None  # not (or no longer) a synced folder: create nothing in it
    state = State(folder)
    try:
        raw = state.get(LAST_PASS)
    finally:
        state.close()
    return json.loads(raw) if raw else None


def _describe(p: dict[str, Any] | None) -> str:
    if p is None:
        return "no pass recorded yet"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(p["at"]))
    if p.get("failed"):
        return f"{when}: failed: {p['failed']}"
    counts = ", ".join(f"{n} {k}" for k, n in sorted(p.get("counts", {}).items()))
    return f"{when}: {'ok' if p['ok'] else 'finished with errors'}" + (
        f" ({counts})" if counts else " (up to date)")


# The runner and platform are module attributes so tests can swap them.
runner: Runner = run
platform: Callable[[], Platform] = Platform.here


class ServiceError(SealsyncClientError):
    """systemctl or launchctl refused; the message is theirs."""


def _call(argv: list[str]) -> None:
    done = runner(argv)
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")


@click.group()
def service() -> None:
    """Run `sealsync watch DIR` in the background, started at login."""


@service.command()
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def install(folder_dir: str) -> None:
    """Write and enable a user service that keeps DIR in sync."""
    from .cli import _errors
    from .cli_ops import slot

    with _errors():
        folder = Path(folder_dir).resolve()
        if slot(folder).recall() is None:
            raise KeyfileError(
                f"no remembered key for {folder}: run `sealsync sync {folder}` once "
                "(without --no-remember), so the service can unlock it without a prompt")
        here = platform()
        path = here.unit_path(folder)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(here.render(folder))
        try:
            for argv in here.enable(folder):
                _call(argv)
        except ServiceError:
            path.unlink()  # not half-installed: `service status` says "not installed"
            raise
        click.echo(f"installed and started {path}")


@service.command()
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def uninstall(folder_dir: str) -> None:
    """Stop DIR's service and remove it (the folder and its key stay)."""
    from .cli import _errors

    with _errors():
        folder = Path(folder_dir).resolve()
        here = platform()
        path = here.unit_path(folder)
        if not path.exists():
            raise NotInitialised(f"no service installed for {folder}")
        for argv in here.disable(folder):
            runner(argv)  # already stopped is fine
        path.unlink()
        for argv in here.after_removal():
            _call(argv)
        click.echo(f"removed {path}")


@service.command()
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", required=False,
                type=click.Path(exists=True, file_okay=False))
def status(as_json: bool, folder_dir: str | None) -> None:
    """Whether DIR's service runs, and its last pass (all folders without DIR)."""
    here = platform()
    folders = [Path(folder_dir).resolve()] if folder_dir else installed(here)
    rows: list[dict[str, Any]] = []
    for folder in folders:
        has_unit = here.unit_path(folder).exists()
        running, how = here.running(runner(here.query(folder))) if has_unit else (
            False, "not installed")
        rows.append({"folder": str(folder), "installed": has_unit, "running": running,
                     "state": how, "unit": str(here.unit_path(folder)),
                     "last_pass": last_pass(folder)})
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
    elif not rows:
        click.echo("no Sealsync service installed")
    for r in [] if as_json else rows:
        click.echo(f"{r['folder']}: {r['state']}\n  last pass: {_describe(r['last_pass'])}")
    sys.exit(0)
