"""The records the store keeps, as plain data (no I/O), and the names of the
Redis wake-up topics, so handlers can use them without importing adapters.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Version:
    """A file's head, or one of its revisions."""

    file_id: str
    revision: int
    deleted: bool
    manifest_key: str | None
    size: int
    chunk_ids: tuple[str, ...]
    upload_id: str
    device_id: str
    committed: int
    # Committed by a batch: the manifest is bytes [offset, offset + length)
    # of the batch's bundle at `manifest_key`; None: the whole object.
    manifest_offset: int | None = None
    manifest_length: int | None = None
    # Expired (core/retention.py): when; its chunk list is gone, its
    # manifest and signature stay (the history still verifies)
    expired_at: int | None = None


@dataclass(frozen=True)
class Change:
    seq: int
    file_id: str
    revision: int
    deleted: bool


def batch_topic(batch_id: str) -> str:
    return f"wake:batch:{batch_id}"


def feed_topic(user_id: str, after_seq: int) -> str:
    """The topic a reader at cursor `after_seq` waits on; the commit that
    writes seq `after_seq + 1` wakes it."""
    return f"wake:feed:{user_id}:{after_seq}"
