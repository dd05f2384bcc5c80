"""The chunk ids of each file's last version this device committed or
downloaded: what an edit of that file need not ask the server about.

An edit of a big file changes a few chunks of thousands (a 1 GiB file has
about 3,400). Asking `POST /v1/chunks/missing` about every one of them
costs 68 bytes each on the wire, about 230 KB for a 1 MiB change to a
1 GiB file: more than a tenth of what the change itself sends
(benchmarks/resync.py). The chunks of the version this device last
uploaded or fetched are stored on the server, so a batch asks only about
the others.

A stale entry costs bandwidth, never data. The server trusts nothing the
client assumes: a batch's request names every chunk of each version, and
for any chunk the server does not have (one collected since, or a version
that lost a conflict) it presigns a PUT of its own (`chunk_urls`), which
the client sends as a chunk object. The commit still checks that every
chunk exists.

Kept in `.sealsync/known-chunks/`, one file per file id: the 32-byte ids
back to back, at most MAX_CHUNKS of them, replaced atomically. A file
that is unreadable or malformed counts as empty.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from .manifest import MAX_CHUNKS

ID_LEN = 32
_ID = re.compile(r"[0-9a-f]{64}")
_FILE_ID = re.compile(r"[0-9a-f]{32}")


class KnownChunks:
    """One file of chunk ids per file id, in `directory` (made on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, file_id: str) -> Path | None:
        return self.directory / file_id if _FILE_ID.fullmatch(file_id) else None

    def of(self, file_ids: Iterable[str]) -> set[str]:
        """Every chunk id recorded for any of `file_ids`."""
        known: set[str] = set()
        for file_id in file_ids:
            path = self._path(file_id)
            if path is None:
                continue
            try:
                with open(path, "rb") as f:
                    raw = f.read(MAX_CHUNKS * ID_LEN + 1)
            except OSError:
                continue
            if len(raw) % ID_LEN or len(raw) > MAX_CHUNKS * ID_LEN:
                continue  # torn or foreign: ask about every chunk, as before
            known.update(raw[i:i + ID_LEN].hex() for i in range(0, len(raw), ID_LEN))
        return known

    def record(self, file_id: str, chunk_ids: Iterable[str]) -> None:
        """Replace what is recorded for `file_id` (none: forget it). Best
        effort: a failure here only makes the next edit ask about more."""
        path = self._path(file_id)
        ids = sorted({c for c in chunk_ids if _ID.fullmatch(c)})
        if path is None or len(ids) > MAX_CHUNKS:
            return
        try:
            if not ids:
                path.unlink(missing_ok=True)
                return
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{file_id}.tmp")
            tmp.write_bytes(b"".join(bytes.fromhex(c) for c in ids))
            os.replace(tmp, path)
        except OSError:
            pass
