"""The garbage collector: the `gc` job (chalicelib/jobs.py), run on a
schedule, one bounded step at a time per user (the rules and why they are
safe: core/gc.py; the items: adapters/gc_store.py).

It needs no key and no plaintext: it reads ids, sizes and ages, and deletes
whole objects. Each step is written back with a conditional put of the
user's state, so two runs at once (a schedule that fired twice) do each
step once; the deletes themselves are idempotent and conditioned on the
ETag listed, so a stalled run cannot delete an object uploaded again since.

A run visits users in order from a cursor kept in the table and stops when
its step budget is spent; the next run goes on from there, so a big
account's collection spreads over several runs.
"""
from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import replace

from .adapters.gc_store import StateMoved
from .adapters.meta import ddb_item, ddb_plain
from .config import Runtime
from .core import gc as core
from .core.ids import chunk_key, new_id
from .core.packs import Location, pack_key

log = logging.getLogger("sealsync.gc")
PAGE = 1000  # keys listed, location items read per step
PACK_PAGE = core.MAX_DOOMED_PACKS
FILES_PER_STEP = 200
STEPS_PER_RUN = 400
RUN_SECONDS = 20.0  # of the jobs Lambda's 30 s
_CURSOR = {"pk": "GCRUN", "sk": "CURSOR"}
_HEX = re.compile("[0-9a-f]+")


def collect(rt: Runtime, now: int, budget: int = STEPS_PER_RUN,
            seconds: float = RUN_SECONDS, clock: Callable[[], float] = time.monotonic,
            full: bool = False) -> dict[str, int]:
    """The `gc` job: step through users from where the last run stopped
    until the step or time budget is spent (the Lambda has 30 s). Returns
    what it did (also logged). `full` (by hand, tests): each user idle
    between cycles starts a cycle over all objects now, due or not."""
    tally = core.Tally()
    deadline = clock() + seconds
    if clock() >= deadline:
        budget = 0
    users = sorted(set(rt.blobs.users_under("chunks/")) | set(rt.blobs.users_under("packs/")))
    start = _run_cursor(rt)
    todo = [u for u in users if u >= start] + [u for u in users if u < start]
    resume = ""
    for user in todo:
        if tally.steps >= budget:
            resume = user
            break
        if full:
            _start_full_cycle(rt, user, now)
        collect_user(rt, user, now, tally, budget - tally.steps, lambda: clock() >= deadline)
        tally.users += 1
        if tally.steps >= budget:  # maybe unfinished: this user first next time
            resume = user
            break
    _save_run_cursor(rt, resume)
    report = tally.as_dict()
    log.info("gc: %s", report)
    return report


def collect_user(rt: Runtime, user: str, now: int, tally: core.Tally,
                 budget: int = STEPS_PER_RUN,
                 out_of_time: Callable[[], bool] = lambda: False) -> None:
    """Step the user's collection until one cycle's listing is done, another
    run moved the state, or the budget is spent."""
    for _ in range(budget):
        if out_of_time():
            tally.steps = max(tally.steps, budget)  # the run stops here
            return
        state, version = rt.gc.state(user)
        step = STEPS[state.phase]
        tally.steps += 1
        try:
            done = step(rt, user, state, version, now, tally)
        except StateMoved:
            return  # another run is at this user
        if done:
            return


def _start_full_cycle(rt: Runtime, user: str, now: int) -> None:
    state, version = rt.gc.state(user)
    if state.phase == core.LIST and (state.listing == core.DONE or not state.upto):
        with contextlib.suppress(StateMoved):  # another run is at this user
            rt.gc.save(user, core.next_cycle(state, now, rt.settings.gc_grace_s, full=True),
                       version)


def _index(rt: Runtime, user: str, state: core.GcState, version: int, now: int,
           tally: core.Tally) -> bool:
    """Backfill the pack index from location items written before it existed."""
    rows, nxt = rt.gc.locations_page(user, state.cursor, PAGE)
    by_pack: dict[str, list[str]] = {}
    for chunk, pack in rows:
        by_pack.setdefault(pack, []).append(chunk)
    rt.gc.index_packs(user, by_pack)
    done = nxt is None
    rt.gc.save(user, replace(state, phase=core.LIST if done else core.INDEX,
                             cursor=nxt or ""), version)
    return False


def _list(rt: Runtime, user: str, state: core.GcState, version: int, now: int,
          tally: core.Tally) -> bool:
    """One page of the user's chunk or pack objects; doom the candidates.
    True when the cycle's listing is complete (nothing more this run)."""
    grace = rt.settings.gc_grace_s
    if state.listing == core.DONE or state.upto == 0:  # a cycle's start
        if state.upto and not core.cycle_due(state, now, grace):
            return True  # this user's last cycle is recent: nothing to do
        asked = rt.gc.full_wanted(user)  # revisions expired: old objects may be garbage
        rt.gc.save(user, core.next_cycle(state, now, grace, full=asked is not None), version)
        if asked is not None:
            rt.gc.full_started(user, asked)
        return False
    prefix = f"{state.listing}/{user}/"
    rows, more = rt.blobs.list_page(prefix, state.cursor, PAGE if state.listing == core.CHUNKS
                                    else PACK_PAGE)
    width = 64 if state.listing == core.CHUNKS else 32
    ready = core.ready_to_doom(state, now, rt.settings.upload_ttl_s)
    objects = [o for k, modified, size, etag in rows
               if (core.in_window(o := core.Stored(k[len(prefix):], modified, size, etag), state)
                   or o.object_id in ready)
               and _HEX.fullmatch(o.object_id) and len(o.object_id) == width]
    chunks: list[core.Stored] = []
    packs: list[core.Stored] = []
    if state.listing == core.CHUNKS:
        known = rt.meta.known_chunks(user, [o.object_id for o in objects])
        doomed = set(core.chunk_candidates(objects, known, now, grace))
        chunks = [o for o in objects if o.object_id in doomed]
    else:
        state, packs = _packs_page(rt, user, state, objects, now, tally)
    cursor = rows[-1][0] if rows else state.cursor
    listing = state.listing if more else (core.PACKS if state.listing == core.CHUNKS
                                          else core.DONE)
    nxt = replace(state, listing=listing, cursor=cursor if more else "")
    if chunks or packs:
        rt.gc.doom(user, core.doom(nxt, chunks, packs), version)
        tally.doomed += len(chunks) + len(packs)
        return False  # scan and delete, then on with the listing
    rt.gc.save(user, nxt, version)
    return listing == core.DONE  # one cycle per user and run; the next starts next run


def _packs_page(rt: Runtime, user: str, state: core.GcState, objects: list[core.Stored],
                now: int, tally: core.Tally) -> tuple[core.GcState, list[core.Stored]]:
    """A page of packs: the dead ones to doom (a repacked one only once every
    read URL issued before its repack has expired); the mostly dead ones
    repacked now. Returns the state with the repacked packs retired."""
    indexed = rt.gc.pack_index(user, [o.object_id for o in objects])
    every = {c for ids in indexed.values() for c in ids}
    known = rt.meta.known_chunks(user, every)
    where = rt.packs.locations(user, known)
    grace, retired = rt.settings.gc_grace_s, {p for p, _ in state.retired}
    ready = core.ready_to_doom(state, now, rt.settings.upload_ttl_s)
    dead, repacked = [], []
    for o in objects:
        verdict = core.pack_verdict(o, indexed[o.object_id], where, known, now, grace)
        if verdict.dead and (o.object_id not in retired or o.object_id in ready):
            dead.append(o)
        elif (verdict.mostly_dead and o.object_id not in retired
              and verdict.live_bytes <= core.REPACK_MAX_LIVE):
            blobs = core.live_blobs(o.object_id, indexed[o.object_id], where, known)
            if _repack(rt, user, o.object_id, blobs, tally):
                repacked.append(o.object_id)
        tally.repack_candidates += verdict.mostly_dead
    return core.retire(state, repacked, now), dead


def _repack(rt: Runtime, user: str, pack_id: str, blobs: list[tuple[str, Location]],
            tally: core.Tally) -> bool:
    """Copy a pack's live blobs, as they are (sealed; no key needed), into a
    new server-written pack, index it, then move their locations there (each
    only if it still points at the old pack). The old pack is retired: the
    list step dooms it once no read URL for it can still be in use."""
    data = bytearray(core.SERVER_PACK_HEADER)
    for _c, loc in blobs:
        blob = rt.blobs.read_range(pack_key(user, pack_id), loc.offset, loc.length)
        if blob is None or len(blob) != loc.length:
            return False  # gone or short: leave it to the next cycle
        data += blob
    new = new_id()
    rt.blobs.put_new(pack_key(user, new), bytes(data))
    moved = core.repacked(new, blobs)
    rt.gc.index_packs(user, {new: list(moved)})  # the index first, as pack_commit does
    tally.blobs_moved += rt.gc.relocate(user, {c: (pack_id, loc) for c, loc in moved.items()})
    tally.packs_repacked += 1
    log.info("gc %s: repacked %d live blob(s) of a pack", user, len(blobs))
    return True


def _scan(rt: Runtime, user: str, state: core.GcState, version: int, now: int,
          tally: core.Tally) -> bool:
    """Read a page of files' revisions (all of them, over as many steps as
    it takes, after the doom) and rescue whatever they reference. The first
    step reads which chunks are located in the doomed packs (after the doom,
    so no location can point at one anew)."""
    if state.watch is None:
        indexed = rt.gc.pack_index(user, state.doomed_packs)
        where = rt.packs.locations(user, {c for ids in indexed.values() for c in ids})
        rt.gc.save(user, replace(state, watch=core.watching(indexed, where)), version)
        return False
    files, nxt = rt.gc.files_page(user, state.scan_cursor, FILES_PER_STEP)
    referenced = {c for f in files for c in rt.gc.revision_chunks(user, f)}
    after = core.rescue(state, referenced)
    rescued = after.rescued_chunks - state.rescued_chunks
    # Referenced but unknown to the index (a crash after a commit, or the
    # retention job forgot a chunk another file still names): put it back,
    # the v1 object or the rescued pack it is located in stays.
    repaired = rescued | core.located_in_doomed(state, referenced)
    if repaired:
        rt.meta.remember_chunks(user, repaired)
    tally.rescued += (len(rescued) + len(after.rescued_packs - state.rescued_packs))
    rt.gc.save(user, replace(after, phase=core.SCAN if nxt else core.DELETE,
                             scan_cursor=nxt or ""), version)
    return False


def _delete(rt: Runtime, user: str, state: core.GcState, version: int, now: int,
            tally: core.Tally) -> bool:
    """Delete what was doomed and not rescued, then clear the sets."""
    chunks, packs = core.to_delete(state)
    etags = dict(state.etags)
    for c in chunks:
        key = chunk_key(user, c)
        size = rt.blobs.size(key)
        if rt.blobs.delete_if(key, etags[c]):
            tally.chunks_deleted += 1
            tally.bytes_deleted += size or 0
    indexed = rt.gc.pack_index(user, packs)
    for p in packs:
        for c in sorted(indexed[p]):  # its locations first: a reader never sees a dangling one
            tally.locations_deleted += rt.gc.forget_location(user, c, p)
        key = pack_key(user, p)
        size = rt.blobs.size(key)
        if rt.blobs.delete_if(key, etags[p]):
            tally.packs_deleted += 1
            tally.bytes_deleted += size or 0
        rt.gc.forget_pack(user, p)
    rt.gc.save(user, core.cleared(state), version)
    log.info("gc %s: deleted %d chunk(s), %d pack(s)", user, len(chunks), len(packs))
    return False


Step = Callable[[Runtime, str, core.GcState, int, int, core.Tally], bool]
STEPS: dict[str, Step] = {core.INDEX: _index, core.LIST: _list, core.SCAN: _scan,
                          core.DELETE: _delete}


def _run_cursor(rt: Runtime) -> str:
    got = rt.dynamodb.get_item(TableName=rt.settings.table, Key=ddb_item(**_CURSOR))
    return str(ddb_plain(got.get("Item") or {}).get("user", ""))


def _save_run_cursor(rt: Runtime, user: str) -> None:
    rt.dynamodb.put_item(TableName=rt.settings.table, Item=ddb_item(**_CURSOR, user=user))
