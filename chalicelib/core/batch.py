"""Batches: many file versions, one staging object, one handler run. Pure.

  parse_batch      bound and validate POST /v1/batches (each entry like a
                   single upload; duplicate file ids refused)
  bundle_offsets   entry i's manifest is bytes [Σ sizes before i, + size_i)
                   of the bundle (the manifests concatenated in entry order)
  decide_entries   each entry decided on its own by `core.decide`
  plan_groups      the accepted entries cut into TransactWriteItems groups
  pack_entries     the batch record's compact encoding (and its inverse)

Nothing here touches a store: the pipeline (chalicelib/batch_commit.py)
reads, calls these, and executes the plan fenced, so a stale read can
never be written (invariant 2, per file).
"""
from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import decide as core
from .errors import BadRequest, SealsyncError, TooLarge
from .ids import check_id
from .records import Version
from .requests import Limits, only_fields, parse_upload, sha256_field
from .signatures import SIG_LEN

FINISHED = "finished"  # the batch: every entry has its terminal result

# DynamoDB TransactWriteItems: 100 actions and 4 MB per request. A group
# writes per accepted entry its head and revision, plus once the feed
# counter, the group's feed item (every entry's change), its results item
# and a check of the batch's state.
MAX_ACTIONS = 100
ACTIONS_PER_ENTRY = 2
ACTIONS_PER_GROUP = 6  # + the two usage counters (metering)
MAX_GROUP_ENTRIES = (MAX_ACTIONS - ACTIONS_PER_GROUP) // ACTIONS_PER_ENTRY  # 47
MAX_GROUP_BYTES = 3 * 1024 * 1024  # under the 4 MB, with room for names and overhead
_ITEM_OVERHEAD = 512  # keys, names, numbers of one head or revision item


@dataclass(frozen=True)
class Entry:
    """One file version of a batch, as the client declared it."""

    file_id: str
    base_revision: int
    manifest_size: int
    tombstone: bool
    chunk_ids: tuple[str, ...]
    size: int  # Σ chunk sizes + manifest size: what the head reports


@dataclass(frozen=True)
class BatchRequest:
    entries: tuple[Entry, ...]
    chunk_sizes: dict[str, int]  # every chunk id referenced -> its declared size
    bundle_sha256: bytes | None = None  # bound into the bundle's PUT URL when given

    @property
    def bundle_size(self) -> int:
        return bundle_size(self.entries)


@dataclass(frozen=True)
class EntryResult:
    """One entry's terminal result."""

    status: str
    revision: int | None = None  # accepted
    seq: int | None = None  # accepted: its feed seq
    winner_revision: int | None = None  # conflict
    reason: str | None = None  # rejected


@dataclass(frozen=True)
class BatchRecord:
    """What the API wrote at presign time (the only thing the pipeline
    trusts), plus the results written so far."""

    batch_id: str
    user_id: str
    device_id: str
    entries: tuple[Entry, ...]
    status: str
    created: int
    results: dict[int, EntryResult] = field(default_factory=dict)

    @property
    def bundle_size(self) -> int:
        return bundle_size(self.entries)

    def open_entries(self) -> list[int]:
        """Indexes of entries without a terminal result yet."""
        return [i for i in range(len(self.entries)) if i not in self.results]


# -- the request ----------------------------------------------------------------
def parse_batch(body: dict[str, Any], limits: Limits) -> BatchRequest:
    """Validate POST /v1/batches {entries: [...]}. Errors name the entry.
    `packs` is core.packs' to validate, against the entries parsed here."""
    only_fields(body, {"entries", "packs", "bundle_sha256"})
    digest = sha256_field(body.get("bundle_sha256"), "bundle_sha256")
    raw = body.get("entries")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("entries must be a non-empty list")
    if len(raw) > limits.max_batch_entries:
        raise TooLarge(f"a batch may hold at most {limits.max_batch_entries} entries")
    entries: list[Entry] = []
    sizes: dict[str, int] = {}
    where: dict[str, int] = {}
    refs = 0
    for i, item in enumerate(raw):
        try:
            entry, entry_sizes = _parse_entry(item, limits)
        except SealsyncError as exc:
            raise type(exc)(f"entries[{i}]: {exc.message}") from None
        if entry.file_id in where:
            raise BadRequest(f"entries[{i}]: file_id appears twice in one batch "
                             f"(also entries[{where[entry.file_id]}])")
        where[entry.file_id] = i
        refs += len(entry.chunk_ids)
        if refs > limits.max_batch_chunks:
            raise TooLarge(f"a batch may reference at most {limits.max_batch_chunks} "
                           "chunks in all")
        for chunk_id, size in entry_sizes:
            sizes.setdefault(chunk_id, size)
        entries.append(entry)
    request = BatchRequest(tuple(entries), sizes, digest)
    if request.bundle_size > limits.max_bundle_bytes:
        raise TooLarge(f"the manifests of a batch and their signatures may total at most "
                       f"{limits.max_bundle_bytes} bytes")
    return request


def _parse_entry(item: object, limits: Limits) -> tuple[Entry, list[tuple[str, int]]]:
    if not isinstance(item, dict):
        raise BadRequest("each entry must be an object")
    tombstone = item.get("tombstone", False)
    if not isinstance(tombstone, bool):
        raise BadRequest("tombstone must be true or false")
    # Exactly a single upload's fields, plus `tombstone`.
    single = parse_upload({k: v for k, v in item.items() if k != "tombstone"}, limits)
    if tombstone and single.chunk_ids:
        raise BadRequest("a tombstone references no chunks")
    entry = Entry(single.file_id, single.base_revision, single.manifest_size, tombstone,
                  single.chunk_ids, sum(single.chunk_sizes) + single.manifest_size)
    return entry, list(zip(single.chunk_ids, single.chunk_sizes, strict=True))


def bundle_size(entries: Sequence[Entry]) -> int:
    """The manifests, then one device signature per entry (core/signatures.py):
    the signatures ride with the bytes they sign, not in the batch record."""
    return sum(e.manifest_size for e in entries) + SIG_LEN * len(entries)


def bundle_offsets(sizes: Sequence[int]) -> list[int]:
    """Entry i's manifest starts at Σ sizes before i."""
    out, at = [], 0
    for size in sizes:
        out.append(at)
        at += size
    return out


# -- the decisions ----------------------------------------------------------------
def decide_entries(rec: BatchRecord, heads: Mapping[str, Version | None],
                   bundle_size: int | None, missing: Mapping[int, int],
                   only: Sequence[int] | None = None) -> dict[int, core.Decision]:
    """Decide each open entry (or those in `only`) against its file's head.

    `bundle_size` is S3's real size of the staging object (None: absent);
    `missing[i]` how many of entry i's chunks are not stored. A bundle whose
    size is not Σ declared sizes rejects every entry: no offset in it can be
    trusted. An entry whose head already carries this batch's id was
    committed by an earlier run (a crash, or another handler): skipped."""
    out: dict[int, core.Decision] = {}
    declared = rec.bundle_size
    for i in rec.open_entries() if only is None else only:
        if i in rec.results:
            continue
        e = rec.entries[i]
        head = heads.get(e.file_id)
        if head is not None and head.upload_id == rec.batch_id:
            out[i] = core.Skip("committed by an earlier run of this batch")
            continue
        if bundle_size is not None and bundle_size != declared:
            out[i] = core.Reject(f"bundle is {bundle_size} bytes but the entries "
                                 f"declare {declared}")
            continue
        proposal = core.Proposal(
            status=core.PENDING, base_revision=e.base_revision,
            declared_size=e.manifest_size,
            actual_size=None if bundle_size is None else e.manifest_size,
            missing_chunks=missing.get(i, 0), tombstone=e.tombstone)
        out[i] = core.decide(head.revision if head else 0,
                             head.deleted if head else False, proposal)
    return out


def result_of(decision: core.Decision) -> EntryResult | None:
    """The terminal result a conflict or rejection writes (None otherwise:
    an accept's result is written by its group's transaction)."""
    if isinstance(decision, core.Conflict):
        return EntryResult(core.CONFLICT, winner_revision=decision.winner_revision)
    if isinstance(decision, core.Reject):
        return EntryResult(core.REJECTED, reason=decision.reason)
    return None


# -- the plan of transactions ----------------------------------------------------
def entry_bytes(e: Entry) -> int:
    """A generous estimate of what an entry adds to a transaction: its head
    and revision both carry its packed chunk ids."""
    return 2 * (32 * len(e.chunk_ids) + _ITEM_OVERHEAD) + _ITEM_OVERHEAD


def plan_groups(accepted: Sequence[int], weights: Mapping[int, int],
                max_entries: int = MAX_GROUP_ENTRIES,
                max_bytes: int = MAX_GROUP_BYTES) -> list[tuple[int, ...]]:
    """Cut the accepted entries, in order, into groups of at most
    `max_entries` (2 actions each + 6 per group ≤ 100) and `max_bytes`."""
    groups: list[tuple[int, ...]] = []
    current: list[int] = []
    used = 0
    for i in accepted:
        w = weights.get(i, 0)
        if current and (len(current) >= max_entries or used + w > max_bytes):
            groups.append(tuple(current))
            current, used = [], 0
        current.append(i)
        used += w
    if current:
        groups.append(tuple(current))
    return groups


def group_actions(group: Sequence[int]) -> int:
    return ACTIONS_PER_ENTRY * len(group) + ACTIONS_PER_GROUP


def group_seqs(last: int, group: Sequence[int]) -> dict[int, int]:
    """The feed seqs a group takes after the feed head `last`, in order."""
    return {i: last + 1 + n for n, i in enumerate(group)}


# -- the record's encoding --------------------------------------------------------
# per entry: file id (16 bytes), base u64, manifest size u32, size u64,
# flags u8 (1 = tombstone), chunk count u16; then all chunk ids, 32 bytes each.
_ENTRY = struct.Struct(">16sQIQBH")


def pack_entries(entries: Sequence[Entry]) -> tuple[bytes, bytes]:
    """(entries, chunk ids) as two binary blobs: 1,000 entries and 8,192
    chunk refs stay far under DynamoDB's 400 KB item limit."""
    head = b"".join(_ENTRY.pack(bytes.fromhex(e.file_id), e.base_revision, e.manifest_size,
                                e.size, 1 if e.tombstone else 0, len(e.chunk_ids))
                    for e in entries)
    chunks = b"".join(bytes.fromhex(c) for e in entries for c in e.chunk_ids)
    return head, chunks


def unpack_entries(head: bytes, chunks: bytes) -> tuple[Entry, ...]:
    out: list[Entry] = []
    at = 0
    for fid, base, msize, size, flags, count in _ENTRY.iter_unpack(head):
        ids = tuple(chunks[j:j + 32].hex() for j in range(at, at + 32 * count, 32))
        at += 32 * count
        out.append(Entry(check_id(fid.hex(), "file id"), base, msize, bool(flags & 1), ids,
                         size))
    return tuple(out)


# -- a group's feed item ---------------------------------------------------------------
# per change, in seq order: file id (16 bytes), revision u64, flags u8 (1 = deleted)
_CHANGE = struct.Struct(">16sQB")


def pack_changes(changes: Sequence[tuple[str, int, bool]]) -> bytes:
    """The (file id, revision, deleted) of consecutive seqs, for one item."""
    return b"".join(_CHANGE.pack(bytes.fromhex(f), rev, 1 if deleted else 0)
                    for f, rev, deleted in changes)


def unpack_changes(raw: bytes) -> list[tuple[str, int, bool]]:
    return [(check_id(f.hex(), "file id"), rev, bool(flags & 1))
            for f, rev, flags in _CHANGE.iter_unpack(raw)]


# -- what the client is told ----------------------------------------------------------
def entry_body(e: Entry, r: EntryResult | None) -> dict[str, Any]:
    out: dict[str, Any] = {"file_id": e.file_id, "status": r.status if r else core.PENDING}
    if r is not None:
        for key, value in (("revision", r.revision), ("winner_revision", r.winner_revision),
                           ("reason", r.reason)):
            if value is not None:
                out[key] = value
    return out


def batch_body(rec: BatchRecord) -> dict[str, Any]:
    """GET /v1/batches/{id}: the batch and every entry's verdict, in entry order."""
    return {"batch_id": rec.batch_id, "status": rec.status,
            "entries": [entry_body(e, rec.results.get(i)) for i, e in enumerate(rec.entries)]}


def feed_cursor(rec: BatchRecord) -> int | None:
    """The highest feed seq this batch wrote (None: it accepted nothing)."""
    seqs = [r.seq for r in rec.results.values() if r.seq is not None]
    return max(seqs) if seqs else None
