"""`sealsync restore`: bring back an old revision's content, verified.

The old version's manifest must open for exactly (file, revision), carry
the account's signature, and hash to what this device's history recorded
for that revision (history.verify_recorded). Only then is its content
downloaded (each chunk verified) and put in place; the next sync commits
it as a new revision.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from .api import NotFound
from .engine import Engine
from .errors import RevisionExpired
from .state import NotInitialised


def restore_revision(engine: Engine, file_id: str, revision: int, dest: Path,
                     shown_path: str) -> None:
    """Write revision `revision` of `file_id` to `dest`, or raise (nothing written)."""
    try:
        version = engine.transfer.version(file_id, revision)
    except NotFound:
        raise NotInitialised(f"{shown_path} has no revision {revision}") from None
    if version.manifest is None or version.manifest.tombstone:
        raise NotInitialised(f"revision {revision} of {shown_path} is a delete")
    if version.expired:  # refused before any check: there is nothing to fetch
        raise RevisionExpired(
            f"revision {revision} of {shown_path} expired on "
            f"{time.strftime('%Y-%m-%d', time.gmtime(int(version.body['expired_at'])))}: the "
            "server keeps superseded and deleted versions only for its retention window "
            "(`sealsync history` lists what can still be restored)")
    engine.history.verify_recorded(file_id, revision, version.manifest)
    tmp = engine.tmp / f"restore-{file_id}"  # our temporary files stay in .sealsync/
    engine.transfer.download(version, tmp)
    os.replace(tmp, dest)
