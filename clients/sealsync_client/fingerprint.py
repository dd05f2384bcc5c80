"""How a local file is recognised between passes: its fingerprint.

The fingerprint (size, mtime, ctime, inode and a BLAKE2b content hash) tells
"edited here since the last sync" apart from "unchanged", which is what stops
a download from overwriting a local edit. An edit that keeps size and mtime
(`touch -d`, `cp -p`, `rsync -t`) still moves the ctime; a swap of two names
changes the inodes. state.py stores fingerprints; this module only takes them.
"""
from __future__ import annotations

import hashlib
import os
import stat
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# A fingerprint taken this close to the file's mtime or ctime is not trusted
# (git's "racy git"): a write in the same clock tick would leave every
# field unchanged. Such a fingerprint is stored smudged, and hashed again.
RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Fingerprint:
    size: int
    mtime_ns: int  # -1: smudged (taken too close to a change), hash again
    hash: str
    ctime_ns: int = 0
    ino: int = 0


def local_hasher() -> Any:
    """The content hash of a fingerprint, empty (hashlib's BLAKE2b)."""
    return hashlib.blake2b(digest_size=32, person=b"sealsync:local")


def hash_file(path: Path) -> str:
    h = local_hasher()
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return str(h.hexdigest())


class NotAFile(OSError):
    """Something other than a regular file sits where a file was expected."""


def fingerprint(path: Path, known: Fingerprint | None = None) -> Fingerprint:
    """The file's fingerprint; reuses `known`'s hash only when size, mtime,
    ctime and inode all match and `known` was not smudged."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"not a regular file: {path}")
    if known is not None and known.mtime_ns != -1 and (
            known.size, known.mtime_ns, known.ctime_ns, known.ino) == (
            st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino):
        return known
    return _trusted(st, hash_file(path))


def _trusted(st: os.stat_result, digest: str) -> Fingerprint:
    racy = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS
    return Fingerprint(st.st_size, -1 if racy else st.st_mtime_ns, digest,
                       st.st_ctime_ns, st.st_ino)


def unhashed(path: Path) -> Fingerprint:
    """The fingerprint of a new file without its content hash (`hash` is
    ""): the upload's chunking pass hashes the same bytes (HashingReader)
    and fills it in. The stat is taken first, so a write during the pass
    moves mtime or ctime and the next pass hashes the file again."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotAFile(f"not a regular file: {path}")
    return _trusted(st, "")


class _Raw(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


class HashingReader:
    """A raw file for the chunker that also feeds the fingerprint's content
    hash with exactly the bytes the chunker reads, so an upload reads a new
    file once, not twice (measured: one BLAKE2b pass of 1 GiB was about 1 s
    in front of the chunking, benchmarks/README.md "The 1 GiB sync").

    The hash runs on one helper thread (hashlib releases the GIL), block by
    block in order, while the chunker cuts and hashes chunks: each block is
    read into one of two buffers of our own and copied to the chunker's,
    which moves its leftovers around; a buffer is reused only once its
    block was hashed. Without `helper` (a file too small for a thread to
    pay off) each block is hashed in place before the chunker sees it."""

    BLOCK = 1024 * 1024
    HELPER_MIN = 8 * 1024 * 1024  # file size from which the helper thread pays off

    def __init__(self, raw: _Raw, helper: bool = True) -> None:
        self._raw = raw
        self._hash = local_hasher()
        self._jobs: list[Future[None] | None] = [None, None]
        self._turn = 0
        self._pool: ThreadPoolExecutor | None = None
        self._bufs: list[bytearray] = []
        if helper:
            self._bufs = [bytearray(self.BLOCK), bytearray(self.BLOCK)]
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="sealsync-hash")

    def readinto(self, out: memoryview) -> int:
        if self._pool is None:
            n = self._raw.readinto(out) or 0
            self._hash.update(out[:n])
            return n
        i = self._turn
        self._turn ^= 1
        job = self._jobs[i]
        if job is not None:
            job.result()  # that block is hashed: its buffer may be refilled
        view = memoryview(self._bufs[i])[:min(self.BLOCK, len(out))]
        n = self._raw.readinto(view) or 0
        if n:
            out[:n] = view[:n]
            self._jobs[i] = self._pool.submit(self._hash.update, view[:n])
        return n

    def hexdigest(self) -> str:
        """The hash of every byte read so far (waits for the helper)."""
        for job in self._jobs:
            if job is not None:
                job.result()
        return str(self._hash.hexdigest())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def placed(path: Path, digest: str) -> Fingerprint:
    """The fingerprint of a file we just wrote, whose content hash we know."""
    return _trusted(os.lstat(path), digest)
