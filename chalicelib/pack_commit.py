"""The batch pipeline's chunk check, packs included (docs/DESIGN.md "Packs").

Called once per handler run, under the batch's locks, before any decision:

  1 the chunk index answers for chunks an earlier version stored
  2 each declared pack holding a chunk the index lacks is HEADed once; a
    pack absent or of another size than declared counts its chunks missing
  3 the arrived packs' chunks get their location NOW (adapters/packs.py),
    before any head can reference them, so a crash after a commit never
    leaves a committed chunk the reader cannot find (invariant 5); the
    chunk index proper is written after the commit, as for v1 chunks
  4 the remaining chunks (sent as v1 chunk objects) are HEADed as before

Only the entries that need a missing chunk are rejected (core.decide); the
others commit. The pure part is core.packs.arrived.

Garbage collection (core/gc.py): whenever the batch references any chunk,
the collector's fence is read FIRST, before the chunk index; a doomed chunk
counts as unknown even if the index names it, a doomed pack as never
arrived and a doomed v1 chunk as absent, and the caller conditions its
transaction on the generation read (`gc_gen`), so a pack or chunk doomed
after this check makes the commit check again instead of referencing an
object about to go. Known chunks need the fence too since revisions expire
(core/retention.py): the retention job deletes index entries, so "known"
no longer means "live for good" (docs/DESIGN.md "Retention rule").
"""
from __future__ import annotations

from .config import Runtime
from .core.batch import BatchRecord
from .core.ids import chunk_key
from .core.packs import Location, arrived, pack_key


def missing_chunks(rt: Runtime, rec: BatchRecord) -> tuple[dict[int, int], int | None]:
    """Per open entry with any, how many of its distinct chunks are not
    stored; and the collector's generation the check relied on (None: no
    chunk referenced, nothing to fence)."""
    user = rec.user_id
    wanted = {c for i in rec.open_entries() for c in rec.entries[i].chunk_ids}
    if not wanted:  # small files ride inline: nothing to check, nothing to fence
        return {}, None
    fence = rt.gc.fence(user)  # before the index and any HEAD: see the module's docstring
    unknown = wanted - (rt.meta.known_chunks(user, wanted, consistent=True)
                        - fence.doomed_chunks)
    if not unknown:  # no pack is even looked up
        return {}, fence.gen
    decls = tuple(d for d in rt.packs.declared(rec.batch_id)
                  if any(b.chunk_id in unknown for b in d.blobs))
    sizes = [None if d.pack_id in fence.doomed_packs else s for d, s in
             zip(decls, rt.blobs.sizes([pack_key(user, d.pack_id) for d in decls]), strict=True)]
    found, lost = arrived(decls, {d.pack_id: s for d, s in zip(decls, sizes, strict=True)})
    new = {c: loc for c, loc in found.items() if c in unknown}
    rt.gc.index_packs(user, _by_pack(new))  # the pack index first: a superset
    rt.packs.remember(user, new)
    rest = sorted(unknown - found.keys() - lost)
    absent_keys = set(rt.blobs.missing([chunk_key(user, c) for c in rest]))
    gone = {c for c in rest if chunk_key(user, c) in absent_keys or c in fence.doomed_chunks}
    absent = (gone - _still_in_a_pack(rt, user, gone, fence.doomed_packs)) | (lost & unknown)
    out = {i: len(set(rec.entries[i].chunk_ids) & absent) for i in rec.open_entries()}
    return {i: n for i, n in out.items() if n}, fence.gen


def _still_in_a_pack(rt: Runtime, user: str, chunks: set[str],
                     doomed_packs: frozenset[str]) -> set[str]:
    """Chunks neither known nor declared nor stored alone that are located
    in a pack still stored and not doomed: the retention job dropped them
    from the index (another file still names them, or an edit's base does),
    and they are as stored as any. The fence read before covers the pack as
    it covers a declared one. Read only when such chunks exist."""
    located = {c: loc for c, loc in rt.packs.locations(user, chunks).items()
               if loc.pack_id not in doomed_packs} if chunks else {}
    packs = sorted({loc.pack_id for loc in located.values()})
    stored = {p for p, size in zip(packs, rt.blobs.sizes([pack_key(user, p) for p in packs]),
                                   strict=True) if size is not None}
    return {c for c, loc in located.items() if loc.pack_id in stored}


def _by_pack(located: dict[str, Location]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c, loc in located.items():
        out.setdefault(loc.pack_id, []).append(c)
    return out
