"""The storage quota, pure: may this request add bytes to the account?

What counts is the account's stored bytes as the commit metered them
(adapters/usage.py TOTAL `b`): each committed version's size, moved only in
the commit's fenced transaction from sizes the server checked there (the
bundle HEADed against the declared manifest sizes, each pack HEADed
against its declared size, each chunk PUT bound to its length by the
presigned URL). What a request declares is never charged; it only lets
the server refuse earlier:

  - stored ≥ quota            refused (413 over_quota)
  - stored + declared > quota refused too (the batch would pass it)
  - a delete                  always allowed, even over quota (a user's
                              deletes must never wedge). It frees the
                              file's quota when its versions expire, the
                              retention window after the delete
                              (core/retention.py; docs/ACCOUNT.md "The
                              storage quota")

A delete here is what a client sends to remove a file: an entry that
references no chunk, of an existing file (base revision ≥ 1), whose
manifest is tombstone-sized. Its few bytes are still metered and billed.
Concurrent batches each check before either commits, so an account can
pass its quota by at most what it has in flight (documented; the metered
bytes stay exact and billed).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import TooLarge

# A signed tombstone manifest is a few hundred bytes; a long path name
# and the envelope's padding stay far below this.
MAX_DELETE_MANIFEST_BYTES = 64 * 1024


class OverQuota(TooLarge):
    """The account's storage quota is used up (or this request would pass
    it): uploads are refused, nothing is deleted, reads and deletes work."""

    code = "over_quota"


@dataclass(frozen=True)
class Adding:
    """What one entry of a request would add: the client's declaration."""

    base_revision: int
    manifest_size: int
    chunk_count: int
    size: int  # Σ declared chunk sizes + manifest size: what its commit meters

    @property
    def is_delete(self) -> bool:
        return (self.chunk_count == 0 and self.base_revision >= 1
                and self.manifest_size <= MAX_DELETE_MANIFEST_BYTES)


def check(stored: int, quota: int, entries: Iterable[Adding], retention_days: int = 0) -> None:
    """Raise OverQuota unless these entries may be presigned. `quota` ≤ 0
    means no quota; `retention_days` (0: every version kept) says in the
    message how deleting frees space."""
    entries = list(entries)
    if quota <= 0 or all(e.is_delete for e in entries):
        return
    adding = sum(e.size for e in entries)
    if stored >= quota:
        raise OverQuota(f"this account's storage quota is used up ({_gib(stored)} stored of "
                        f"{_gib(quota)}): uploads are refused; nothing is deleted, downloads and "
                        f"deletes still work. {how_space_frees(retention_days)}")
    if stored + adding > quota:
        raise OverQuota(f"this upload ({_gib(adding)}) would pass the account's storage quota "
                        f"({_gib(stored)} stored of {_gib(quota)}): send less; nothing is "
                        f"deleted, downloads and deletes still work. "
                        f"{how_space_frees(retention_days)}")


def how_space_frees(retention_days: int) -> str:
    """One sentence for the 413 and the quota mail: what deleting does."""
    if retention_days <= 0:
        return ("This server keeps every version, so deleting files does not free quota: "
                "ask your provider for a larger quota")
    days = f"{retention_days} day{'s' if retention_days != 1 else ''}"
    return (f"Deleted files and replaced versions free their space {days} after the delete "
            f"or the change (until then they can be restored), or ask your provider for a "
            f"larger quota")


def _gib(n: int) -> str:
    if n < 1024**3:
        return f"{n / 1024**2:.1f} MiB" if n >= 1024**2 else f"{n} bytes"
    return f"{n / 1024**3:.2f} GiB"
