"""The commit decision: which upload wins. Pure, so it can be tabulated.

`decide` never touches a store. The pipeline reads the head, calls `decide`,
then executes the result as ONE conditional transaction fenced on the head
revision it read; if the fence fails, it reads again and decides again. So a
wrong decision from a stale read can never be written (invariant 2).
"""
from __future__ import annotations

from dataclasses import dataclass

PENDING = "pending"
ACCEPTED = "accepted"
CONFLICT = "conflict"
REJECTED = "rejected"
TERMINAL = frozenset({ACCEPTED, CONFLICT, REJECTED})


@dataclass(frozen=True)
class Proposal:
    """What the pipeline observed about one upload, from trusted sources only.

    `declared_size` and `base_revision` come from the server's own upload
    record; `actual_size` from S3's HEAD of the staging object (None if it is
    gone); `missing_chunks` from checking every chunk the record lists.
    """

    status: str
    base_revision: int
    declared_size: int
    actual_size: int | None
    missing_chunks: int
    tombstone: bool = False


@dataclass(frozen=True)
class Accept:
    revision: int


@dataclass(frozen=True)
class Conflict:
    winner_revision: int


@dataclass(frozen=True)
class Reject:
    reason: str


@dataclass(frozen=True)
class Skip:
    """Nothing to do: a duplicate event, or an event for an absent object."""

    reason: str


Decision = Accept | Conflict | Reject | Skip


def decide(head_revision: int, head_deleted: bool, p: Proposal) -> Decision:
    """Decide one upload against the file's current head (0 = no file)."""
    if p.status in TERMINAL:
        return Skip(f"upload already {p.status}")
    if p.actual_size is None:
        # A forged or stale event must not reject a real upload still in flight.
        return Skip("staging object is absent")
    if p.actual_size != p.declared_size:
        return Reject(
            f"manifest is {p.actual_size} bytes but {p.declared_size} were declared"
        )
    if p.missing_chunks:
        return Reject(f"{p.missing_chunks} referenced chunk(s) were never uploaded")
    if p.base_revision > head_revision:
        return Reject(
            f"base revision {p.base_revision} is ahead of the head ({head_revision})"
        )
    if p.base_revision != head_revision:
        return Conflict(head_revision)
    if p.tombstone and (head_revision == 0 or head_deleted):
        return Reject("the file does not exist or is already deleted")
    return Accept(head_revision + 1)
