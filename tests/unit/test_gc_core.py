"""The collector's pure rules (chalicelib/core/gc.py): what is a candidate,
what a pack's verdict is, and that the cycle never deletes anything a
revision scanned after the doom references."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import gc
from chalicelib.core.packs import Location

NOW, GRACE = 1_000_000.0, 3600
MD5 = "0" * 32
OLD, YOUNG = NOW - GRACE - 1, NOW - 10


def cid(n: int) -> str:
    return f"{n:064x}"


def pid(n: int) -> str:
    return f"{n:032x}"


def test_a_chunk_is_a_candidate_only_when_old_unknown_and_deletable() -> None:
    objs = [gc.Stored(cid(1), OLD, 10, MD5), gc.Stored(cid(2), YOUNG, 10, MD5),
            gc.Stored(cid(3), OLD, 10, MD5), gc.Stored(cid(4), OLD, 10, "abc-2")]
    assert gc.chunk_candidates(objs, {cid(3)}, NOW, GRACE) == [cid(1)]


def test_pack_verdicts_dead_mostly_dead_live() -> None:
    p = gc.Stored(pid(1), OLD, 1000, MD5)
    here = {cid(1): Location(pid(1), 0, 100), cid(2): Location(pid(1), 100, 800)}
    elsewhere = {cid(1): Location(pid(2), 0, 100)}
    assert gc.pack_verdict(p, [], {}, set(), NOW, GRACE).dead
    assert gc.pack_verdict(p, [cid(1)], elsewhere, {cid(1)}, NOW, GRACE).dead
    v = gc.pack_verdict(p, [cid(1), cid(2)], here, {cid(1)}, NOW, GRACE)
    assert (v.dead, v.mostly_dead, v.live_bytes) == (False, True, 100)
    v = gc.pack_verdict(p, [cid(1), cid(2)], here, {cid(1), cid(2)}, NOW, GRACE)
    assert (v.dead, v.mostly_dead) == (False, False)
    young = gc.Stored(pid(1), YOUNG, 1000, MD5)
    assert not gc.pack_verdict(young, [], {}, set(), NOW, GRACE).dead


def test_doom_bumps_the_generation_and_the_fence_names_the_doomed() -> None:
    s = gc.doom(gc.GcState(gen=4), [gc.Stored(cid(1), OLD, 1, MD5)],
                [gc.Stored(pid(2), OLD, 1, MD5)])
    assert s.gen == 5 and s.phase == gc.SCAN
    assert s.fence() == gc.Fence(5, frozenset({cid(1)}), frozenset({pid(2)}))
    assert dict(s.etags) == {cid(1): MD5, pid(2): MD5}
    assert gc.cleared(s).fence() == gc.Fence(5)


def test_next_cycle_moves_the_window_and_goes_full_every_so_often() -> None:
    s = gc.next_cycle(gc.GcState(upto=500.0, cycles=3), NOW, GRACE)
    assert (s.since, s.upto, s.cycles) == (500.0, NOW - GRACE, 4)
    full = gc.next_cycle(gc.GcState(upto=500.0, cycles=gc.FULL_EVERY - 1), NOW, GRACE)
    assert full.since == 0.0


ids = st.integers(0, 30)


@given(doomed_chunks=st.sets(ids), located=st.dictionaries(ids, st.integers(0, 6)),
       doomed_packs=st.sets(st.integers(0, 6)),
       pages=st.lists(st.sets(ids), max_size=5))
def test_nothing_a_scanned_revision_references_is_ever_deleted(
        doomed_chunks: set[int], located: dict[int, int], doomed_packs: set[int],
        pages: list[set[int]]) -> None:
    """Whatever order the scan pages come in: a doomed chunk a revision
    names, and a doomed pack in which a chunk a revision names is located,
    are rescued; everything else doomed is deleted."""
    where = {cid(c): Location(pid(p), 0, 1) for c, p in located.items()}
    indexed = {pid(p): {cid(c) for c, q in located.items() if q == p} | {cid(99)}
               for p in doomed_packs}  # the index is a superset of the locations
    state = gc.doom(gc.GcState(), [gc.Stored(cid(c), OLD, 1, MD5) for c in doomed_chunks],
                    [gc.Stored(pid(p), OLD, 1, MD5) for p in doomed_packs])
    state = replace(state, watch=gc.watching(indexed, where))
    for page in pages:
        state = gc.rescue(state, {cid(c) for c in page})
    chunks, dead_packs = gc.to_delete(state)
    referenced = set().union(*pages) if pages else set()
    assert {cid(c) for c in referenced}.isdisjoint(chunks)
    needed = {pid(located[c]) for c in referenced if c in located}
    assert needed.isdisjoint(dead_packs)
    assert set(chunks) == {cid(c) for c in doomed_chunks - referenced}
    assert set(dead_packs) == {pid(p) for p in doomed_packs} - needed


def test_live_blobs_are_repacked_back_to_back_after_the_header() -> None:
    here = {cid(2): Location(pid(1), 900, 50), cid(1): Location(pid(1), 5, 30),
            cid(3): Location(pid(7), 5, 10)}
    blobs = gc.live_blobs(pid(1), [cid(1), cid(2), cid(3), cid(4)], here,
                          {cid(1), cid(2), cid(3)})
    assert [c for c, _ in blobs] == [cid(1), cid(2)]
    moved = gc.repacked(pid(9), blobs)
    assert moved == {cid(1): Location(pid(9), 5, 30), cid(2): Location(pid(9), 35, 50)}


def test_a_retired_pack_is_ready_once_read_urls_expired() -> None:
    s = gc.retire(gc.GcState(), [pid(1)], 1000)
    assert gc.ready_to_doom(s, 1000 + 3599, 3600) == set()
    assert gc.ready_to_doom(s, 1000 + 3600, 3600) == {pid(1)}


@given(st.lists(st.tuples(st.integers(0, 30), st.binary(min_size=16, max_size=16)),
                max_size=20, unique_by=lambda t: t[0]))
def test_the_state_items_ids_and_etags_round_trip(rows: list[tuple[int, bytes]]) -> None:
    objs = [gc.Stored(cid(n), OLD, 1, tag.hex()) for n, tag in rows]
    s = gc.doom(gc.GcState(), objs, [])
    assert gc.pack_ids(gc.packed(s.doomed_chunks), 32) == s.doomed_chunks
