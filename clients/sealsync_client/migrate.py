"""`sealsync key migrate`: move a passphrase-only (kdf v1) folder to a
two-secret account, in one command.

A v1 account's every key derives from the passphrase alone, so its stored
ciphertext can be attacked by guessing. Re-keying in place would need every
device's history and signatures to change keys mid-feed; a fresh account is
simpler and leaves nothing half-done:

1. sync the old account once, so nothing local is unsent and nothing remote
   is missing (any error stops here, with nothing changed);
2. move the old `.sealsync/` aside (outside the folder, so it is never scanned);
3. create a new account with a new Secret Key and make the folder its first
   device, then put the old `.sealsync/` inside the new one as `legacy-v1/`;
4. upload every file under the new keys.

If step 3 fails the old `.sealsync/` is put back. The old account's data
stays on the server under the old keys until its operator deletes it
(docs/SECURITY.md); other devices join the new account with `--join`.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .engine import Report
from .errors import KdfError, SealsyncClientError
from .folder import Cost, Folder, init_folder, open_folder
from .names import META_DIR

LEGACY_DIR = "legacy-v1"


@dataclass(frozen=True)
class Migrated:
    folder: Folder
    old_user_id: str
    upload: Report


def migrate_folder(root: Path, passphrase: str, new_passphrase: str,
                   cost: Cost | None = None) -> Migrated:
    """Re-create the folder's account with a Secret Key; see the module doc."""
    root = root.resolve()
    old = open_folder(root, passphrase)
    try:
        if old.secret_key is not None:
            raise KdfError(f"{root} already uses a Secret Key: nothing to migrate")
        report = old.engine().sync()
        if report.errors:
            raise SealsyncClientError("the last sync of the old account had errors; fix "
                                      "them and run the migration again: "
                                      + "; ".join(report.errors[:3]))
        server, device, old_user = old.config.server, old.config.device_name, old.config.user_id
    finally:
        old.close()
    aside = root.parent / f".{root.name}.sealsync-v1-{int(time.time())}"
    os.rename(root / META_DIR, aside)
    try:
        new = init_folder(root, server, new_passphrase, device_name=device, cost=cost)
    except BaseException:
        shutil.rmtree(root / META_DIR, ignore_errors=True)
        os.rename(aside, root / META_DIR)
        raise
    os.rename(aside, root / META_DIR / LEGACY_DIR)
    return Migrated(new, old_user, new.engine().sync())
