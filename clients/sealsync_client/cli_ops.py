"""The operational options of the command line: the remembered key
(`--no-remember`, `sealsync forget`), `--bwlimit`, and opening a folder
with whichever key is at hand. Registered on the group in cli.py.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .bwlimit import BadRate, Limiter, Limits
from .folder import Cost, Folder, open_unlocked, unlock
from .names import META_DIR
from .remember import Remembered, clear_not_kept, default_store, mark_not_kept, may_be_kept
from .state import Config

F = TypeVar("F", bound=Callable[..., Any])
NO_REMEMBER_ENV = "SEALSYNC_NO_REMEMBER"


def no_remember_option(fn: F) -> F:
    return click.option(
        "--no-remember", is_flag=True, envvar=NO_REMEMBER_ENV,
        help="do not keep the unlocked key in the keychain (a key kept earlier is still "
             f"used; `sealsync forget` removes it). Also ${NO_REMEMBER_ENV}=1.")(fn)


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> Limits | None:
    if value is None:
        return None
    try:
        return Limits.parse(value)
    except BadRate as exc:
        raise click.BadParameter(str(exc)) from None


def bwlimit_option(fn: F) -> F:
    return click.option(
        "--bwlimit", metavar="RATE", callback=_rate,
        help="limit transfers to RATE bytes/s over all files at once: 512k, 10M, 1.5G "
             "(binary units: k = KiB), a bare number is bytes/s; UP:DOWN limits each "
             "direction, e.g. 1M:off")(fn)


def slot(root: Path) -> Remembered:
    config = Config.load(root.resolve())
    return Remembered(default_store(), config.user_id, config.device_id)


def open_remembered(root: Path, passphrase: Callable[[], str], remember: bool,
                    limits: Limits | None = None) -> Folder:
    """Open the folder with its remembered key, else with the passphrase
    (then remember the key unless told not to). The keychain is consulted
    before the Argon2id only if a key may be kept (remember.py: its
    discovery and the Argon2id would otherwise be resident together)."""
    keys = slot(root).recall() if may_be_kept(root / META_DIR) else None
    if keys is None:
        keys = unlock(root, passphrase())
        if remember and os.environ.get(NO_REMEMBER_ENV, "") in ("", "0"):  # any command
            keep(slot(root), keys, root)
    folder = open_unlocked(root, keys)
    if limits is not None:
        folder.api.limiter = Limiter.build(limits)
    return folder


def keep(kept: Remembered, keys: Any, root: Path | None = None) -> None:
    """Remember `keys`; on success drop `root`'s not-kept mark (when given)."""
    problem = kept.keep(keys)
    if problem:  # not fatal: the next run asks for the passphrase again
        click.echo(f"sealsync: {problem}", err=True)
    elif root is not None:
        clear_not_kept(root / META_DIR)


@click.command()
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def forget(folder_dir: str) -> None:
    """Remove DIR's remembered key: the next run asks for the passphrase."""
    from .cli import _errors

    with _errors():
        kept = slot(Path(folder_dir))
        gone = kept.forget()
        mark_not_kept(Path(folder_dir) / META_DIR)
        click.echo(f"forgot the key of {Path(folder_dir).resolve()} ({kept.store.where})"
                   if gone else "no remembered key for this folder")
        sys.exit(0)


def reseed_and_sync(root: Path, server: str | None, join: str | None, device: str | None,
                    cost: Cost, as_json: bool, passphrase: str,
                    secret_key: str | None) -> Folder:
    """`init --reseed`: move the lost account's state aside, start afresh,
    upload everything (reseed.py), and remember the new key, not the old."""
    from .cli import _printer, _progress, _summary
    from .reseed import reseed_folder

    old = slot(root)
    folder, backup = reseed_folder(root, passphrase, server=server, join_user_id=join,
                                   device_name=device, cost=cost, secret_key=secret_key)
    old.forget()
    report = folder.engine(_printer(as_json), _progress(as_json)).sync()
    if not as_json:
        click.echo(f"reseeded: {_summary(report)} (the old state is in {backup})", err=True)
    return folder
