"""Batches: many file versions, one staging object, one handler run. Pure.

  parse_draft      bound and validate POST /v1/batches (each entry like a
                   single upload, its chunks possibly ranges of its base;
                   duplicate file ids refused)
  resolve          expand the ranges against the base revisions read
                   (core/chunk_ranges.py): the entries as the record keeps them
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
from .chunk_ranges import ChunkList, Explicit, expand, parse_chunk_list
from .errors import BadRequest, SealsyncError, TooLarge
from .ids import check_id
from .records import Version
from .requests import Limits, UploadRequest, only_fields, parse_upload, sha256_field
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
    chunk_sizes: dict[str, int]  # every chunk id named explicitly -> its declared size
    bundle_sha256: bytes | None = None  # bound into the bundle's PUT URL when given
    # chunks named only by ranges of a base revision: stored already
    from_base: frozenset[str] = frozenset()

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
    # The v1 wrapper's batch of one (docs/DESIGN.md "One protocol"): its
    # signatures came with the request, so the staged bundle is the
    # manifests alone. None: they are the bundle's trailer.
    detached: tuple[bytes | None, ...] | None = None

    @property
    def bundle_size(self) -> int:
        return bundle_size(self.entries, trailer=self.detached is None)

    def open_entries(self) -> list[int]:
        """Indexes of entries without a terminal result yet."""
        return [i for i in range(len(self.entries)) if i not in self.results]


# -- the request ----------------------------------------------------------------
@dataclass(frozen=True)
class Draft:
    """An entry as parsed, its chunks possibly ranges of its base's list
    (core/chunk_ranges.py) that only the base revision's item can expand."""

    file_id: str
    base_revision: int
    manifest_size: int
    tombstone: bool
    chunks: ChunkList


@dataclass(frozen=True)
class BatchDraft:
    """POST /v1/batches validated, before the ranges are expanded (`resolve`)."""

    drafts: tuple[Draft, ...]
    bundle_sha256: bytes | None = None

    def bases(self) -> dict[str, int]:
        """file id -> base revision of each entry that names ranges of its base:
        the only revisions `resolve` needs read."""
        return {d.file_id: d.base_revision for d in self.drafts if d.chunks.uses_base}


def parse_draft(body: dict[str, Any], limits: Limits) -> BatchDraft:
    """Validate POST /v1/batches {entries: [...]}. Errors name the entry.
    `packs` is core.packs' to validate, against the entries parsed here."""
    only_fields(body, {"entries", "packs", "bundle_sha256"})
    digest = sha256_field(body.get("bundle_sha256"), "bundle_sha256")
    raw = body.get("entries")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("entries must be a non-empty list")
    if len(raw) > limits.max_batch_entries:
        raise TooLarge(f"a batch may hold at most {limits.max_batch_entries} entries")
    drafts: list[Draft] = []
    where: dict[str, int] = {}
    refs = 0
    for i, item in enumerate(raw):
        try:
            draft = _parse_entry(item, limits)
        except SealsyncError as exc:
            raise type(exc)(f"entries[{i}]: {exc.message}") from None
        if draft.file_id in where:
            raise BadRequest(f"entries[{i}]: file_id appears twice in one batch "
                             f"(also entries[{where[draft.file_id]}])")
        where[draft.file_id] = i
        refs += draft.chunks.refs  # ranges count as the chunks they name
        if refs > limits.max_batch_chunks:
            raise TooLarge(f"a batch may reference at most {limits.max_batch_chunks} "
                           "chunks in all")
        drafts.append(draft)
    if bundle_size(drafts) > limits.max_bundle_bytes:
        raise TooLarge(f"the manifests of a batch and their signatures may total at most "
                       f"{limits.max_bundle_bytes} bytes")
    return BatchDraft(tuple(drafts), digest)


def _parse_entry(item: object, limits: Limits) -> Draft:
    if not isinstance(item, dict):
        raise BadRequest("each entry must be an object")
    tombstone = item.get("tombstone", False)
    if not isinstance(tombstone, bool):
        raise BadRequest("tombstone must be true or false")
    # A single upload's fields, plus `tombstone`, and chunks that may be
    # ranges of the base (`chunks_sha256` comes with those).
    single = parse_upload({k: v for k, v in item.items()
                           if k not in ("tombstone", "chunks", "chunks_sha256")}, limits)
    chunks = parse_chunk_list(item.get("chunks", []), item.get("chunks_sha256"), limits)
    if tombstone and chunks.segments:
        raise BadRequest("a tombstone references no chunks")
    if chunks.uses_base and single.base_revision == 0:
        raise BadRequest("a new file (base_revision 0) has no base to name ranges of")
    return Draft(single.file_id, single.base_revision, single.manifest_size, tombstone,
                 chunks)


def resolve(draft: BatchDraft, bases: Mapping[str, Version], limits: Limits) -> BatchRequest:
    """Expand each entry's ranges against its base revision, read by the
    caller (`bases[file_id]`, for the files `draft.bases()` names; absent:
    no such revision). A base that is missing or a tombstone, a range
    outside its list, or an expansion that is not `chunks_sha256` is a 400
    naming the entry: nothing is recorded."""
    entries: list[Entry] = []
    sizes: dict[str, int] = {}
    stored: set[str] = set()
    for i, d in enumerate(draft.drafts):
        ids = tuple(s.chunk_id for s in d.chunks.segments if isinstance(s, Explicit))
        if d.chunks.uses_base:
            base = bases.get(d.file_id)
            try:
                if base is None or base.revision != d.base_revision or base.deleted:
                    raise BadRequest(f"its base revision {d.base_revision} is not a stored "
                                     "version of the file: send the full chunk list")
                if base.expired_at is not None:  # no chunk list left (core/retention.py)
                    raise BadRequest(f"its base revision {d.base_revision} expired: send "
                                     "the full chunk list")
                ids = expand(d.chunks, base.chunk_ids)
            except SealsyncError as exc:
                raise type(exc)(f"entries[{i}]: {exc.message}") from None
            # chunks of a committed revision: stored, never presigned again
            stored.update(set(ids) - {c for c, _ in d.chunks.explicit()})
        for chunk_id, size in d.chunks.explicit():
            sizes.setdefault(chunk_id, size)
        entries.append(Entry(d.file_id, d.base_revision, d.manifest_size, d.tombstone, ids,
                             d.chunks.size + d.manifest_size))
    return BatchRequest(tuple(entries), sizes, draft.bundle_sha256, frozenset(stored))


def entry_of(single: UploadRequest, tombstone: bool = False) -> Entry:
    return Entry(single.file_id, single.base_revision, single.manifest_size, tombstone,
                 single.chunk_ids, sum(single.chunk_sizes) + single.manifest_size)


def batch_of_one(single: UploadRequest, tombstone: bool = False) -> BatchRequest:
    """A v1 upload (POST /v1/uploads) or delete as the batch it is."""
    sizes: dict[str, int] = {}
    for chunk_id, size in zip(single.chunk_ids, single.chunk_sizes, strict=True):
        sizes.setdefault(chunk_id, size)
    return BatchRequest((entry_of(single, tombstone),), sizes)


def bundle_size(entries: Sequence[Entry | Draft], trailer: bool = True) -> int:
    """The manifests, then one device signature per entry (core/signatures.py):
    the signatures ride with the bytes they sign, not in the batch record.
    A v1 upload's batch of one has no trailer (`detached`)."""
    return sum(e.manifest_size for e in entries) + (SIG_LEN * len(entries) if trailer else 0)


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


def upload_body(batch_id: str, e: Entry, verdict: dict[str, Any]) -> dict[str, Any]:
    """GET /v1/uploads/{id}: a batch of one's entry, in the v1 shape
    (`verdict` is its entry_body, from the record or a wake-up)."""
    return {"upload_id": batch_id, **verdict, "file_id": e.file_id,
            "base_revision": e.base_revision}


def feed_cursor(rec: BatchRecord) -> int | None:
    """The highest feed seq this batch wrote (None: it accepted nothing)."""
    seqs = [r.seq for r in rec.results.values() if r.seq is not None]
    return max(seqs) if seqs else None
