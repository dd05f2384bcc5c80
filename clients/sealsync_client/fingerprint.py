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
from dataclasses import dataclass
from pathlib import Path

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


def hash_file(path: Path) -> str:
    h = hashlib.blake2b(digest_size=32, person=b"sealsync:local")
    buf = bytearray(1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


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


def placed(path: Path, digest: str) -> Fingerprint:
    """The fingerprint of a file we just wrote, whose content hash we know."""
    return _trusted(os.lstat(path), digest)
