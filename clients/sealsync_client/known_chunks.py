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

The same record lets an edit send its chunk list as ranges of its base's
(chunk_delta.py): for that it keeps the revision too, and the ids in the
order the server holds that revision's list (repeats kept). A record of
another revision than the edit's base is never used for ranges, and a
wrong one costs one refused request (the server checks `chunks_sha256`),
never a wrong list.

Kept in `.sealsync/known-chunks/`, one file per file id, replaced
atomically: `SKC2`, the revision (u64, big-endian), then the 32-byte ids
back to back, at most MAX_CHUNKS of them. A record from before revisions
were kept is the ids alone (a set, sorted). A file that is unreadable or
malformed counts as empty.
"""
from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterable
from pathlib import Path

from .manifest import MAX_CHUNKS

ID_LEN = 32
MAGIC = b"SKC2"
_HEADER = struct.Struct(">4sQ")  # MAGIC, revision
_ID = re.compile(r"[0-9a-f]{64}")
_FILE_ID = re.compile(r"[0-9a-f]{32}")


class KnownChunks:
    """One file of chunk ids per file id, in `directory` (made on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, file_id: str) -> Path | None:
        return self.directory / file_id if _FILE_ID.fullmatch(file_id) else None

    def _read(self, file_id: str) -> tuple[int | None, list[str]]:
        """(revision, ids in order) as recorded; (None, ...) for a record
        without a revision, (None, []) for none or a malformed one."""
        path = self._path(file_id)
        if path is None:
            return None, []
        try:
            with open(path, "rb") as f:
                raw = f.read(_HEADER.size + MAX_CHUNKS * ID_LEN + 1)
        except OSError:
            return None, []
        revision: int | None = None
        if len(raw) % ID_LEN == _HEADER.size and raw[:len(MAGIC)] == MAGIC:
            revision = _HEADER.unpack_from(raw)[1]
            raw = raw[_HEADER.size:]
        if len(raw) % ID_LEN or len(raw) > MAX_CHUNKS * ID_LEN:
            return None, []  # torn or foreign: ask about every chunk, as before
        return revision, [raw[i:i + ID_LEN].hex() for i in range(0, len(raw), ID_LEN)]

    def of(self, file_ids: Iterable[str]) -> set[str]:
        """Every chunk id recorded for any of `file_ids`."""
        known: set[str] = set()
        for file_id in file_ids:
            known.update(self._read(file_id)[1])
        return known

    def base(self, file_id: str, revision: int) -> list[str] | None:
        """The chunk list of exactly `revision` of the file, in the server's
        order, if that is the revision recorded (None otherwise)."""
        recorded, ids = self._read(file_id)
        return ids if recorded == revision and revision > 0 and ids else None

    def record(self, file_id: str, chunk_ids: Iterable[str],
               revision: int | None = None) -> None:
        """Replace what is recorded for `file_id` (none: forget it). With a
        revision, `chunk_ids` is that revision's list in the server's order,
        kept as given; without, a set. Best effort: a failure here only
        makes the next edit ask about, and send, more."""
        path = self._path(file_id)
        given = list(chunk_ids)
        if not all(_ID.fullmatch(c) for c in given):
            revision, given = None, [c for c in given if _ID.fullmatch(c)]
        ids = given if revision is not None else sorted(set(given))
        if path is None or len(ids) > MAX_CHUNKS:
            return
        try:
            if not ids:
                path.unlink(missing_ok=True)
                return
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{file_id}.tmp")
            head = b"" if revision is None else _HEADER.pack(MAGIC, revision)
            tmp.write_bytes(head + b"".join(bytes.fromhex(c) for c in ids))
            os.replace(tmp, path)
        except OSError:
            pass
