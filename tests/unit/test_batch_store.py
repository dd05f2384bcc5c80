"""The batch store (adapters/batches.py) on moto: the record, heads in
bulk, and the fenced group commit: all of a group or nothing."""
from __future__ import annotations

import secrets

import pytest

from chalicelib.adapters.meta import FenceLost
from chalicelib.config import Runtime
from chalicelib.core.batch import (
    FINISHED,
    MAX_GROUP_ENTRIES,
    BatchRecord,
    Entry,
    EntryResult,
    bundle_offsets,
)
from chalicelib.core.decide import ACCEPTED, CONFLICT, PENDING, REJECTED
from chalicelib.core.ids import new_id
from deploy.cost_calls import item_bytes
from tests.integration.support import table_items


def cid() -> str:
    return secrets.token_hex(32)


def make(rt: Runtime, n: int, user: str | None = None) -> BatchRecord:
    entries = tuple(Entry(new_id(), 0, 10 + i, False, (cid(), cid()), 100 + i)
                    for i in range(n))
    rec = BatchRecord(new_id(), user or new_id(), new_id(), entries, PENDING, 1000)
    rt.batches.create(rec, 2000)
    return rec


def commit(rt: Runtime, rec: BatchRecord, group: list[int], last: int,
           revisions: dict[int, int] | None = None) -> None:
    revs = revisions or dict.fromkeys(group, 1)
    seqs = {i: last + 1 + n for n, i in enumerate(group)}
    rt.batches.commit_group(rec, revs, seqs, last, f"manifests/{rec.user_id}/batch/x",
                            bundle_offsets([e.manifest_size for e in rec.entries]), 7)


def test_the_record_round_trips(fast_rt: Runtime) -> None:
    rec = make(fast_rt, 3)
    assert fast_rt.batches.get(rec.batch_id) == rec
    assert rec.detached is None and rec.bundle_size == 10 + 11 + 12 + 3 * 64
    assert fast_rt.batches.get(new_id()) is None
    assert list(fast_rt.meta.pending_before(2000)) == [rec.batch_id]  # the sweeper finds it


@pytest.mark.parametrize("signature", [bytes(range(64)), None])
def test_a_v1_uploads_detached_signature_round_trips(fast_rt: Runtime,
                                                     signature: bytes | None) -> None:
    """A v1 upload's batch of one keeps the signature its request carried
    (or that it had none: the commit says "unsigned"); its bundle is the
    manifest alone."""
    entry = Entry(new_id(), 0, 10, False, (cid(),), 100)
    rec = BatchRecord(new_id(), new_id(), new_id(), (entry,), PENDING, 1000,
                      detached=(signature,))
    fast_rt.batches.create(rec, 2000)
    got = fast_rt.batches.get(rec.batch_id)
    assert got == rec and got.detached == (signature,) and got.bundle_size == 10


def test_a_group_commits_heads_revisions_feed_and_results(fast_rt: Runtime) -> None:
    rec = make(fast_rt, 4)
    commit(fast_rt, rec, [0, 2], 0)
    got = fast_rt.batches.get(rec.batch_id)
    assert got and got.results == {0: EntryResult(ACCEPTED, revision=1, seq=1),
                                   2: EntryResult(ACCEPTED, revision=1, seq=2)}
    assert got.open_entries() == [1, 3]
    heads = fast_rt.batches.heads(rec.user_id, [e.file_id for e in rec.entries])
    assert set(heads) == {rec.entries[0].file_id, rec.entries[2].file_id}
    h2 = heads[rec.entries[2].file_id]
    assert (h2.revision, h2.upload_id, h2.manifest_offset, h2.manifest_length) == (
        1, rec.batch_id, 10 + 11, 12)
    assert h2.chunk_ids == rec.entries[2].chunk_ids and h2.size == 102
    assert fast_rt.meta.get_revision(rec.user_id, rec.entries[2].file_id, 1) == h2
    assert [(c.seq, c.file_id) for c in fast_rt.meta.changes(rec.user_id, 0, 10)] == [
        (1, rec.entries[0].file_id), (2, rec.entries[2].file_id)]
    assert fast_rt.meta.feed_head(rec.user_id) == 2


@pytest.mark.parametrize("what", ["head", "feed", "result"])
def test_a_lost_fence_writes_nothing_of_the_group(fast_rt: Runtime, what: str) -> None:
    rec = make(fast_rt, 3)
    commit(fast_rt, rec, [0], 0)
    before = table_items(fast_rt)
    with pytest.raises(FenceLost):
        if what == "head":  # entry 0's head is at 1 now, not its base 0
            commit(fast_rt, rec, [1, 0], 1, {0: 2, 1: 1})
        elif what == "feed":
            commit(fast_rt, rec, [1, 2], 0)  # the feed head is 1, not 0
        else:
            fast_rt.batches.write_results(rec, {1: EntryResult(REJECTED, reason="x")})
            commit(fast_rt, rec, [1, 2], 1)
    after = table_items(fast_rt)
    if what == "result":  # only the rejection's result changed the state item
        changed = [it for it in after if it not in before]
        assert [(it["pk"]["S"], it["sk"]["S"]) for it in changed] == [
            (f"UP#{rec.batch_id}", "UP")]
        assert len(after) == len(before)
    else:
        assert after == before


def test_results_are_written_once_and_the_batch_finishes(fast_rt: Runtime) -> None:
    rec = make(fast_rt, 90)
    first = {i: EntryResult(CONFLICT, winner_revision=3) for i in range(0, 90, 2)}
    fast_rt.batches.write_results(rec, first)
    again = {i: EntryResult(REJECTED, reason="late") for i in range(90)}
    fast_rt.batches.write_results(rec, again)  # only the odd ones are new
    got = fast_rt.batches.get(rec.batch_id)
    assert got and got.open_entries() == []
    assert all(got.results[i] == (first[i] if i % 2 == 0 else again[i]) for i in range(90))
    fast_rt.batches.finish(rec.batch_id, 9)
    fast_rt.batches.finish(rec.batch_id, 10)  # harmless
    done = fast_rt.batches.get(rec.batch_id)
    assert done and done.status == FINISHED
    assert list(fast_rt.meta.pending_before(2000)) == []
    fast_rt.batches.write_results(rec, {0: EntryResult(REJECTED, reason="x")})
    assert fast_rt.batches.get(rec.batch_id) == done  # a finished batch never changes


def test_heads_are_read_in_pages_of_a_hundred(fast_rt: Runtime) -> None:
    rec = make(fast_rt, 120)
    for at in range(0, 120, MAX_GROUP_ENTRIES):
        group = list(range(at, min(at + MAX_GROUP_ENTRIES, 120)))
        commit(fast_rt, rec, group, at)
    heads = fast_rt.batches.heads(rec.user_id, [e.file_id for e in rec.entries] + [new_id()])
    assert len(heads) == 120 and {h.revision for h in heads.values()} == {1}


def test_a_rejection_never_overwrites_an_accepted_entry(fast_rt: Runtime) -> None:
    """A late run that decided a conflict or a rejection for an entry another
    run committed (and a later edit moved its head on) writes nothing for it:
    its revision base + 1 is this batch's."""
    rec = make(fast_rt, 3)
    commit(fast_rt, rec, [0, 1], 0)
    late = {i: EntryResult(CONFLICT, winner_revision=2) for i in range(3)}
    fast_rt.batches.write_results(rec, late)
    got = fast_rt.batches.get(rec.batch_id)
    assert got and got.results == {0: EntryResult(ACCEPTED, revision=1, seq=1),
                                   1: EntryResult(ACCEPTED, revision=1, seq=2),
                                   2: late[2]}


def test_an_entry_with_a_rejection_is_never_committed(fast_rt: Runtime) -> None:
    """The other order: a group holding an entry some run already rejected
    loses the fence, and writes nothing."""
    rec = make(fast_rt, 2)
    fast_rt.batches.write_results(rec, {1: EntryResult(REJECTED, reason="x")})
    before = table_items(fast_rt)
    with pytest.raises(FenceLost):
        commit(fast_rt, rec, [0, 1], 0)
    assert table_items(fast_rt) == before
    commit(fast_rt, rec, [0], 0)
    got = fast_rt.batches.get(rec.batch_id)
    assert got and got.open_entries() == [] and got.results[1].status == REJECTED


def test_the_same_group_twice_commits_once(fast_rt: Runtime) -> None:
    """Two runs planning the same group (both read the feed head before
    either wrote): the second finds the group's results item and loses."""
    rec = make(fast_rt, 2)
    commit(fast_rt, rec, [0, 1], 0)
    with pytest.raises(FenceLost):  # even with a feed head that moved on meanwhile
        commit(fast_rt, rec, [0, 1], 2, {0: 1, 1: 1})


def test_a_group_writes_small_items_whatever_the_batch(fast_rt: Runtime) -> None:
    """The cost rule: a group's transaction touches no item that grows with
    the batch (the entries item is written once; the state item stays small
    while every entry is accepted)."""
    rec = make(fast_rt, 100)
    for at in range(0, 100, MAX_GROUP_ENTRIES):
        commit(fast_rt, rec, list(range(at, min(at + MAX_GROUP_ENTRIES, 100))), at)
    items = {it["sk"]["S"]: it for it in table_items(fast_rt)
             if it["pk"]["S"] == f"UP#{rec.batch_id}"}
    assert sorted(items) == ["E", *(f"G#{at:04d}" for at in range(0, 100, MAX_GROUP_ENTRIES)),
                             "UP"]
    assert item_bytes(items["UP"]) < 300
    assert all(item_bytes(items[g]) < 1024 for g in items if g.startswith("G#"))  # 1 WRU
    got = fast_rt.batches.get(rec.batch_id)
    assert got and [got.results[i].seq for i in range(100)] == list(range(1, 101))


def test_the_largest_batch_fits_dynamodb_items(fast_rt: Runtime) -> None:
    """DynamoDB refuses items over 400 KB: the entries of the largest batch
    the limits allow, and the state with every entry rejected for the longest
    reason, fit (and round-trip)."""
    limits = fast_rt.settings.limits
    n, refs = limits.max_batch_entries, limits.max_batch_chunks
    per = [refs // n + (1 if i < refs % n else 0) for i in range(n)]
    entries = tuple(Entry(new_id(), 2**40, 2**31, False, tuple(cid() for _ in range(k)),
                          2**50) for k in per)
    rec = BatchRecord(new_id(), new_id(), new_id(), entries, PENDING, 1000)
    fast_rt.batches.create(rec, 2000)
    fast_rt.batches.write_results(rec, {i: EntryResult(REJECTED, reason="x" * 10_000)
                                        for i in range(n)})
    items = {it["sk"]["S"]: it for it in table_items(fast_rt)
             if it["pk"]["S"] == f"UP#{rec.batch_id}"}
    assert item_bytes(items["E"]) < 400_000 and item_bytes(items["UP"]) < 400_000
    got = fast_rt.batches.get(rec.batch_id)
    assert got and got.entries == entries and got.open_entries() == []
    assert {len(r.reason or "") for r in got.results.values()} == {200}


def test_the_feed_pages_through_a_groups_item_change_by_change(fast_rt: Runtime) -> None:
    """A group's changes are one feed item keyed by its last seq: a reader at
    any seq inside it gets the rest, and `limit` counts changes."""
    rec = make(fast_rt, 10)
    commit(fast_rt, rec, list(range(6)), 0)
    commit(fast_rt, rec, list(range(6, 10)), 6)
    feed = [e.file_id for e in rec.entries]
    got = [(c.seq, c.file_id) for c in fast_rt.meta.changes(rec.user_id, 0, 100)]
    assert got == list(enumerate(feed, start=1))
    assert [c.seq for c in fast_rt.meta.changes(rec.user_id, 3, 2)] == [4, 5]
    assert [c.seq for c in fast_rt.meta.changes(rec.user_id, 5, 3)] == [6, 7, 8]
    assert [c.seq for c in fast_rt.meta.changes(rec.user_id, 9, 5)] == [10]
    assert fast_rt.meta.changes(rec.user_id, 10, 5) == []
    feed_items = [it for it in table_items(fast_rt) if it["pk"]["S"] == f"S#{rec.user_id}"]
    assert [it["sk"]["S"] for it in feed_items] == [f"{6:016d}", f"{10:016d}", "SEQ"]
