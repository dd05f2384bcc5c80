"""`sealsync key ...`: the Secret Key's commands, registered by cli.py.

    sealsync key show DIR        the recovery kit again (Secret Key + QR code)
    sealsync key pair DIR        a one-time code for `sealsync init --pair CODE` (pairing.py)
    sealsync key migrate DIR     move a passphrase-only folder to a Secret Key

Imported at the end of cli.py (it uses cli's passphrase prompt and error
handling), so import `sealsync_client.cli`, not this module, first.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

from .api import Api
from .cli import _emit, _errors, _opened, _passphrase, _summary
from .errors import KdfError
from .folder import Cost, Folder
from .kit import recovery_kit
from .migrate import migrate_folder
from .pairing import accept, offer
from .secret_key import SecretKey

NEW_PASSPHRASE_ENV = "SEALSYNC_NEW_PASSPHRASE"


def show_kit(folder: Folder, as_json: bool, qr: bool = True) -> None:
    """Print the recovery kit (or its fields as JSON) for `folder`'s account."""
    cfg, secret = folder.config, folder.secret_key
    if secret is None:
        raise KdfError(f"{folder.root} has no Secret Key yet: run `sealsync key migrate "
                       f"{folder.root}` to move it to one")
    _emit(as_json, {"server": cfg.server, "user_id": cfg.user_id,
                    "secret_key": secret.text()},
          recovery_kit(cfg.server, cfg.user_id, secret, qr=qr).rstrip("\n"))


@click.group()
def key() -> None:
    """The account's Secret Key: show the recovery kit, migrate old folders."""


@key.command("show")
@click.option("--no-qr", is_flag=True, help="text only")
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def show(no_qr: bool, as_json: bool, folder_dir: str) -> None:
    """Show the recovery kit: the server, account and Secret Key (needs the passphrase)."""
    with _errors(), _opened(folder_dir) as folder:
        show_kit(folder, as_json, qr=not no_qr)


@key.command("migrate")
@click.option("--kdf-ops", type=int, default=Cost.ops, hidden=True)
@click.option("--kdf-mem-mib", type=int, default=Cost.mem // 2**20, hidden=True)
@click.option("--json", "as_json", is_flag=True)
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def migrate(kdf_ops: int, kdf_mem_mib: int, as_json: bool, folder_dir: str) -> None:
    """Move DIR to a new account protected by passphrase + Secret Key, and
    upload its files there (the old account's data stays until deleted)."""
    with _errors():
        old = _passphrase()
        new = os.environ.get(NEW_PASSPHRASE_ENV) or str(click.prompt(
            "New passphrase (Enter keeps the current one)", default="", hide_input=True,
            show_default=False)) or old
        done = migrate_folder(Path(folder_dir), old, new, Cost(kdf_ops, kdf_mem_mib * 2**20))
        try:
            if not as_json:
                click.echo(f"{done.folder.root} moved from account {done.old_user_id} to "
                           f"{done.folder.config.user_id}: {_summary(done.upload)}\n"
                           f"Other devices: set them up again with --join "
                           f"{done.folder.config.user_id} and this Secret Key.")
            show_kit(done.folder, as_json)
        finally:
            done.folder.close()


@key.command("pair")
@click.argument("folder_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False))
def pair(folder_dir: str) -> None:
    """Show a one-time code that lets a new device join this account
    (`sealsync init --server URL --pair CODE DIR` there, within 5 minutes)."""
    with _errors(), _opened(folder_dir) as folder:
        secret = folder.secret_key
        if secret is None:
            raise KdfError(f"{folder.root} has no Secret Key yet: run `sealsync key migrate` "
                           "first")

        def show(code: str) -> None:
            click.echo(f"On the new device, within 5 minutes:\n  sealsync init --server "
                       f"{folder.config.server} --pair {code} DIR\nwaiting...", err=True)

        offer(folder.api, folder.config.user_id, secret, show)
        click.echo("sent: only the device that typed this code can open it (it still "
                   "needs the passphrase); if that device reports a failure, run this again",
                   err=True)


def paired_account(server: str, code: str) -> tuple[str, SecretKey]:
    """(user id, Secret Key) from an enrolled device, by its pairing code."""
    api = Api(server)
    try:
        paired = accept(api, code)
    finally:
        api.http.close()
    return paired.user_id, paired.secret_key
