"""Garbage collection of chunks and packs: the pure rules (docs/DESIGN.md
"Pack and chunk lifecycle"). No I/O; chalicelib/gc.py runs them.

Retention: a chunk is live when any revision item names it (an expired
revision names none: core/retention.py). Garbage is a v1 chunk object or a
pack that no revision needs, older than the grace period. The chunk index
(`C#`) is written only after a commit that referenced the chunk, and only
the retention job removes entries (for chunks of revisions it expired), so
candidates are only ever objects the index does not know, which is what
keeps a healthy account's collection cheap; a retention run asks for a full
cycle so that old objects it made unknown are looked at.

A collection cycle per user, each step bounded, with its state in one item:

  index   once per user: backfill the pack -> chunks index (`K#`) from the
          location items written before it existed
  list    list the user's objects from a cursor; doom the candidates: ONE
          transaction bumps the user's generation and records the doomed
          set (the fence, below)
  scan    read every revision (from a cursor, over several runs if need be)
          and rescue any doomed chunk or pack a revision needs
  delete  delete what was doomed and not rescued, then clear the set

Why this is safe against a commit that dedups against a doomed object: a
commit that references any chunk reads the generation and the doomed set
BEFORE it reads the index and checks that the chunk is stored, treats
doomed chunks and packs as missing, and its transaction is conditioned on
the generation being unchanged (known chunks too: index entries can go).
So after the doom transaction no commit can newly reference a doomed
object, and a commit that checked before it loses its fence and checks
again. The scan starts after the doom transaction, so
it sees every revision that could reference a doomed object (no revision
loses its chunk list between a doom and its deletes: the retention job's
transaction checks the phase); what it does not rescue is garbage for good.
The grace period is for liveness (uploads in flight are not made to fail),
not for safety.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from .packs import Location

GRACE_S = 24 * 3600  # > presign TTL (1 h) + sweeper (1 h 5 min), with a day's margin
MAX_DOOMED_CHUNKS = 1000  # per cycle: 32 KB of ids in the state item a commit may read
MAX_DOOMED_PACKS = 100  # per cycle: each pack's index (<= 4,096 ids) is read by the scan
REPACK_BELOW = 0.5  # a pack with less than half its bytes live is "mostly dead"
REPACK_MAX_LIVE = 16 * 1024 * 1024  # the live bytes one repack holds in memory
SERVER_PACK_HEADER = b"SSRP\x01"  # FORMAT.md §12, "Server-written packs"

INDEX, LIST, SCAN, DELETE = "index", "list", "scan", "delete"
PHASES = (INDEX, LIST, SCAN, DELETE)
CHUNKS, PACKS, DONE = "chunks", "packs", "done"  # what the list phase is listing


@dataclass(frozen=True)
class Stored:
    """One object as listed: its id (chunk or pack), last modified, size."""

    object_id: str
    modified: float
    size: int
    etag: str = ""

    def deletable(self) -> bool:
        """A single-part ETag (an MD5): the delete can be conditioned on it."""
        return len(self.etag) == 32 and all(ch in "0123456789abcdef" for ch in self.etag)


@dataclass(frozen=True)
class Fence:
    """What a commit reads before it checks chunks it does not know."""

    gen: int = 0
    chunks: frozenset[str] = frozenset()
    packs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GcState:
    """One user's collection, persisted between runs (adapters/gc_store.py)."""

    gen: int = 0
    phase: str = INDEX
    listing: str = CHUNKS  # which prefix the list phase is on
    cursor: str = ""  # list: last key listed; scan: last file id read; index: last chunk
    doomed_chunks: frozenset[str] = frozenset()
    doomed_packs: frozenset[str] = frozenset()
    rescued_chunks: frozenset[str] = frozenset()
    rescued_packs: frozenset[str] = frozenset()
    scan_cursor: str = ""
    etags: tuple[tuple[str, str], ...] = ()  # doomed id -> the ETag listed (delete If-Match)
    # This cycle considers objects last modified in (since, upto]: an object
    # a finished cycle found live stays live (revisions are kept), so each
    # cycle reads the index only for objects new since; every FULL_EVERY-th
    # cycle starts from 0 (a pack whose chunks were all located elsewhere).
    since: float = 0.0
    upto: float = 0.0
    cycles: int = 0
    # chunk -> doomed pack it is still located in, read once after the doom
    # (None: not read yet); the scan rescues a pack only for these
    watch: tuple[tuple[str, str], ...] | None = None
    # packs whose live blobs were copied out (repack), and when: doomed once
    # every read URL issued before has expired
    retired: tuple[tuple[str, int], ...] = ()

    def fence(self) -> Fence:
        return Fence(self.gen, self.doomed_chunks, self.doomed_packs)


@dataclass(frozen=True)
class PackVerdict:
    pack_id: str
    live_bytes: int
    size: int
    dead: bool  # no live blob, old enough: collect
    mostly_dead: bool  # some live blob, most bytes dead, old enough: repack


@dataclass
class Tally:
    """What one run did (logged and returned by the job)."""

    users: int = 0
    chunks_deleted: int = 0
    packs_deleted: int = 0
    bytes_deleted: int = 0
    locations_deleted: int = 0
    doomed: int = 0
    rescued: int = 0
    repack_candidates: int = 0
    packs_repacked: int = 0
    blobs_moved: int = 0
    steps: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        out = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        return {**out, **self.extra}


FULL_EVERY = 30


def old_enough(obj: Stored, now: float, grace_s: int) -> bool:
    return obj.modified <= now - grace_s


def in_window(obj: Stored, state: GcState) -> bool:
    """Whether this cycle looks at the object at all (never a safety matter:
    an object not looked at is never deleted)."""
    return state.since < obj.modified <= state.upto


CYCLE_EVERY_S = 20 * 3600  # an hourly job starts a user's next cycle about daily


def cycle_due(state: GcState, now: float, grace_s: int) -> bool:
    """Whether the user's next cycle may start (the last started at
    `upto + grace`)."""
    return now - grace_s >= state.upto + CYCLE_EVERY_S


def next_cycle(state: GcState, now: float, grace_s: int, full: bool = False) -> GcState:
    """A cycle's start: listing from the top, objects up to `now - grace`
    (all of them when `full`, else those modified since the last cycle)."""
    cycles = state.cycles + 1
    since = 0.0 if full or cycles % FULL_EVERY == 0 else state.upto
    return replace(state, listing=CHUNKS, cursor="", since=since, upto=now - grace_s,
                   cycles=cycles)


def chunk_candidates(objects: Iterable[Stored], known: set[str], now: float,
                     grace_s: int) -> list[str]:
    """v1 chunk objects to doom: older than the grace period and unknown to
    the chunk index (a known chunk is referenced by a kept revision)."""
    return [o.object_id for o in objects
            if o.object_id not in known and old_enough(o, now, grace_s) and o.deletable()]


def pack_verdict(obj: Stored, indexed: Iterable[str], where: Mapping[str, Location],
                 known: set[str], now: float, grace_s: int) -> PackVerdict:
    """Whether a pack is dead, mostly dead or live. `indexed` are the chunks
    ever located in it (K#), `where` their current locations, `known` the
    chunk index. A blob is live when its chunk is known AND its location is
    still this pack (the same chunk may have been located in a later pack)."""
    live = sum(loc.length for c in set(indexed)
               if c in known and (loc := where.get(c)) is not None and loc.pack_id == obj.object_id)
    old = old_enough(obj, now, grace_s)
    return PackVerdict(obj.object_id, live, obj.size, dead=old and live == 0 and obj.deletable(),
                       mostly_dead=old and 0 < live < obj.size * REPACK_BELOW)


def doom(state: GcState, chunks: Iterable[Stored], packs: Iterable[Stored]) -> GcState:
    """The state the doom transaction writes: next generation, the doomed
    sets with the ETags listed, the scan from the start."""
    chunks, packs = list(chunks), list(packs)
    return replace(state, gen=state.gen + 1, phase=SCAN, watch=None,
                   doomed_chunks=frozenset(o.object_id for o in chunks),
                   doomed_packs=frozenset(o.object_id for o in packs),
                   rescued_chunks=frozenset(), rescued_packs=frozenset(), scan_cursor="",
                   etags=tuple(sorted((o.object_id, o.etag) for o in chunks + packs)))


def rescue(state: GcState, referenced: Iterable[str]) -> GcState:
    """Add to the rescued sets whatever the revisions just read need:
    doomed chunks they name, and doomed packs in which a chunk they name is
    located (`state.watch`, read after the doom: no location can point at a
    doomed pack anew after it, so nothing located there is missed)."""
    refs = set(referenced)
    chunks = state.rescued_chunks | (refs & state.doomed_chunks)
    packs = set(state.rescued_packs)
    for c, p in state.watch or ():
        if c in refs:
            packs.add(p)
    return replace(state, rescued_chunks=frozenset(chunks),
                   rescued_packs=frozenset(packs & state.doomed_packs))


def located_in_doomed(state: GcState, referenced: Iterable[str]) -> set[str]:
    """The referenced chunks located in a doomed pack: the scan rescues those
    packs, and the chunks go back in the index (they may have left it when
    the revision that put them there expired)."""
    refs = set(referenced)
    return {c for c, _p in state.watch or () if c in refs}


def watching(indexed: Mapping[str, Iterable[str]],
             where: Mapping[str, Location]) -> tuple[tuple[str, str], ...]:
    """(chunk, pack) for every chunk indexed in a doomed pack that is still
    located there (a chunk located elsewhere is read from there)."""
    return tuple(sorted((c, p) for p, chunks in indexed.items() for c in chunks
                        if (loc := where.get(c)) is not None and loc.pack_id == p))


def live_blobs(pack_id: str, indexed: Iterable[str], where: Mapping[str, Location],
               known: set[str]) -> list[tuple[str, Location]]:
    """The live blobs of a pack, in chunk-id order: what a repack copies."""
    return sorted((c, loc) for c in set(indexed) if c in known
                  and (loc := where.get(c)) is not None and loc.pack_id == pack_id)


def repacked(new_pack: str, blobs: list[tuple[str, Location]]) -> dict[str, Location]:
    """Where each live blob lies in the server-written pack: after the
    header, back to back in chunk-id order (FORMAT.md §12)."""
    out, at = {}, len(SERVER_PACK_HEADER)
    for c, loc in sorted(blobs):
        out[c] = Location(new_pack, at, loc.length)
        at += loc.length
    return out


def retire(state: GcState, packs: Iterable[str], now: int) -> GcState:
    return replace(state, retired=tuple(sorted({*state.retired, *((p, now) for p in packs)})))


def ready_to_doom(state: GcState, now: float, url_ttl_s: int) -> set[str]:
    """Retired packs no read URL issued before their repack can still use."""
    return {p for p, at in state.retired if at <= now - url_ttl_s}


def to_delete(state: GcState) -> tuple[list[str], list[str]]:
    """(chunk ids, pack ids) that the delete phase removes, sorted."""
    return (sorted(state.doomed_chunks - state.rescued_chunks),
            sorted(state.doomed_packs - state.rescued_packs))


def cleared(state: GcState) -> GcState:
    """After the deletes: the doomed sets emptied (the objects are gone, so a
    commit finds them missing anyway), listing resumes where it stopped."""
    gone = state.doomed_packs - state.rescued_packs
    return replace(state, phase=LIST, doomed_chunks=frozenset(), doomed_packs=frozenset(),
                   retired=tuple(r for r in state.retired if r[0] not in gone), watch=None,
                   rescued_chunks=frozenset(), rescued_packs=frozenset(), scan_cursor="",
                   etags=())


def pack_ids(raw: bytes, width: int) -> frozenset[str]:
    """Ids packed as raw bytes, `width` bytes each (chunk 32, pack 16)."""
    return frozenset(raw[i:i + width].hex() for i in range(0, len(raw), width))


def packed(ids: Iterable[str]) -> bytes:
    return b"".join(bytes.fromhex(i) for i in sorted(ids))
