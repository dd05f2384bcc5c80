"""Version retention, pure: which revisions of a file expire, and what an
expiry frees (docs/DESIGN.md "Retention rule"; the job: chalicelib/retention.py).

The rule, for one file whose revisions are 1..head (consecutive: every
commit makes `base + 1`):

* the head never expires (a tombstone head included: a deleted file stays
  deleted, and its history stays signed and verifiable);
* revision r < head is superseded at the moment r + 1 was committed, and
  expires once it has been superseded for MORE than the window.

That one rule covers every case, because every change is a revision:

* an edit or a rename (a new manifest on the same file id) supersedes
  the revision before it;
* a delete is a tombstone revision (a client-signed one is an ordinary
  revision to the server), so the revisions before it expire one window
  after the delete, and the tombstone, being the head, stays;
* a file deleted and re-created on the same id: the tombstone is
  superseded by the new version and expires a window later; the revisions
  before the delete had expired already or expire on their own clocks;
* a restore is a new revision with the old content: it is the head, and the
  revisions it superseded expire from its commit time.

A window of 0 days means **keep forever** (no expiry at all), not "expire at
once": a setting that is missing a digit must never delete history.

An expired revision keeps its item (revision number, device, time, size,
manifest and signature: what a client needs to verify the signed history)
but no longer names its chunks, so the collector stops counting them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DAY = 24 * 3600
DEFAULT_DAYS = 30


@dataclass(frozen=True)
class Revision:
    """What the rule needs of one revision item."""

    revision: int
    committed: int  # epoch seconds
    size: int  # what the commit metered (manifest + chunks), subtracted on expiry
    expired: bool = False


def window_s(days: int) -> int | None:
    """The retention window in seconds; None: keep forever (days == 0)."""
    if days < 0:
        raise ValueError("the retention window is a number of days, 0 or more")
    return None if days == 0 else days * DAY


def expiring(revisions: Sequence[Revision], window: int | None, now: float) -> list[Revision]:
    """The revisions of one file that expire now: not the head (the highest
    revision), not already expired, superseded for more than `window`.

    `revisions` are all of the file's revision items, any order. A revision
    is superseded when the next one was committed; when that one is missing
    from the list (never, while revisions are kept as items), the next one
    present stands in, which is committed no earlier."""
    if window is None or not revisions:
        return []
    ordered = sorted(revisions, key=lambda r: r.revision)
    out = []
    for older, newer in zip(ordered, ordered[1:], strict=False):
        if not older.expired and now - newer.committed > window:
            out.append(older)
    return out


def expires_at(superseded_at: int | None, window: int | None) -> int | None:
    """The first second at which `expiring` takes a revision superseded at
    `superseded_at` (its successor's commit time); None: never (a head, or
    a window of 0 days)."""
    if window is None or superseded_at is None:
        return None
    return superseded_at + window + 1


def unindexed(expiring_chunks: Iterable[Iterable[str]],
              retained_chunks: Iterable[Iterable[str]]) -> set[str]:
    """Chunks the expiring revisions name that no retained revision of the
    same file names: these leave the chunk index, so the collector looks at
    them again. Another file may still name one; the collector's scan finds
    it then and puts it back in the index (never a safety matter: an index
    entry only spares the collector a look)."""
    gone = {c for chunks in expiring_chunks for c in chunks}
    kept = {c for chunks in retained_chunks for c in chunks}
    return gone - kept


@dataclass(frozen=True)
class Freed:
    """What expiring some revisions takes off the usage TOTAL."""

    bytes: int
    versions: int


def freed(expired: Iterable[Revision]) -> Freed:
    """The same measure the commit added: each revision's metered size, once."""
    expired = list(expired)
    return Freed(sum(r.size for r in expired), len(expired))
