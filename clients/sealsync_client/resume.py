"""Upload resume: the chunks this device has already PUT, across a kill.

The server presigns a PUT for every chunk no *committed* version references
(`known_chunks`), so after a sync is killed half-way through a big file,
the next pass is asked for every chunk again, including the half already
in S3. The create-only PUT then fails with 412 only after its whole body
was sent: without this journal a kill at 50% re-sent 50% of the file.

So every chunk PUT that S3 accepted is appended (one line: its id) to
.sealsync/sent-chunks, and a later batch skips the chunks listed there.
That is safe because the server trusts nothing the client claims: the
commit checks that every chunk of a version exists, and rejects the
version otherwise; and once a batch is decided its chunk ids leave the
journal (accepted: the server knows them now; anything else: the next
attempt sends them again). A kill loses at most the PUTs in flight.
"""
from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_IDS = 1 << 20  # a bound on what is read back: ~66 MiB of lines, far past one pass


class SentChunks:
    """An append-only journal of chunk ids PUT but not yet committed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        try:
            with path.open("r", encoding="ascii", errors="replace") as f:
                for line in f:
                    if len(self._ids) >= MAX_IDS:
                        break
                    if _ID.match(line.strip()):  # a torn last line is simply skipped
                        self._ids.add(line.strip())
        except FileNotFoundError:
            pass

    def __contains__(self, chunk_id: object) -> bool:
        with self._lock:
            return chunk_id in self._ids

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def add(self, chunk_id: str) -> None:
        """Record a PUT that S3 accepted (one O_APPEND write: no torn
        interleaving between threads, and it survives a kill of the process)."""
        if not _ID.match(chunk_id):
            return
        with self._lock:
            if chunk_id in self._ids:
                return
            self._ids.add(chunk_id)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (chunk_id + "\n").encode())
            finally:
                os.close(fd)

    def settled(self, chunk_ids: Iterable[str]) -> None:
        """The batch holding these chunks was decided: forget them (the
        file is rewritten without them, or removed when empty)."""
        with self._lock:
            before = len(self._ids)
            self._ids.difference_update(chunk_ids)
            if len(self._ids) == before:
                return
            if not self._ids:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(f"{c}\n" for c in sorted(self._ids)), encoding="ascii")
            os.replace(tmp, self.path)
