"""`sealsync init --reseed DIR`: upload a folder again, to a new account,
after the server lost or rolled back its data (api.ServerForgot).

The folder's files are the truth: the old local state (config, key file,
sync state and verified history, all about an account the server no longer
has) is moved aside into .sealsync/before-reseed-TIME/, never deleted, and
the folder is initialised afresh. The next pass then finds every file new
and uploads it; nothing remote is left to delete, so nothing local is.
With `join_user_id`, a second device joins the account the first one
reseeded instead of making yet another.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .folder import Cost, Folder, init_folder
from .names import META_DIR
from .state import Config

# What describes the old account; .sealsync/tmp and part files stay.
_OLD_STATE = ("config.json", "keys", "state.db", "state.db-wal", "state.db-shm",
              "sent-chunks")


def reseed_folder(root: Path, passphrase: str, *, server: str | None = None,
                  join_user_id: str | None = None, device_name: str | None = None,
                  cost: Cost | None = None,
                  secret_key: str | None = None) -> tuple[Folder, Path]:
    """Re-initialise `root` against a new (or joined) account; returns the
    folder and where the old state was moved."""
    root = root.resolve()
    old = Config.load(root)  # NotInitialised if this is no Sealsync folder
    meta = root / META_DIR
    backup = meta / time.strftime("before-reseed-%Y%m%dT%H%M%S", time.gmtime())
    backup.mkdir(mode=0o700)
    moved = []
    for name in _OLD_STATE:
        if (meta / name).exists():
            os.replace(meta / name, backup / name)
            moved.append(name)
    try:
        folder = init_folder(root, server or old.server, passphrase,
                             device_name=device_name or old.device_name,
                             join_user_id=join_user_id, cost=cost, secret_key=secret_key)
    except BaseException:
        for name in (n for n in _OLD_STATE if (meta / n).exists()):
            os.unlink(meta / name)  # what the failed init left
        for name in moved:  # as it was: a retry starts from the same place
            os.replace(backup / name, meta / name)
        backup.rmdir()
        raise
    return folder, backup
