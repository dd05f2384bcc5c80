"""The batch pipeline on moto + fakeredis, through the real API: partial
conflicts, duplicates, crashes between groups, bad input, the long poll,
the one push, the sweeper."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.core.batch import FINISHED, MAX_GROUP_ENTRIES
from chalicelib.core.ids import bundle_key, chunk_key, new_id, staging_key
from chalicelib.core.signatures import SIG_LEN
from chalicelib.sweeper import sweep
from tests.harness import BatchItem, Device, Harness, PendingBatch
from tests.integration.support import table_items
from tests.unit.bad_input import World, each, expect


class Crash(Exception):
    pass


def crash_at(step: str, times: int = 1):  # type: ignore[no-untyped-def]
    seen = [0]

    def fault(now: str) -> None:
        if now == step:
            seen[0] += 1
            if seen[0] == times:
                raise Crash(step)
    return fault


def commit_file(h: Harness, dev: Device, file_id: str, revisions: int) -> None:
    for base in range(revisions):
        assert h.commit(h.stage(dev, file_id, base).key).single.status == "accepted"


def verdicts(h: Harness, dev: Device, batch: PendingBatch) -> list[tuple[Any, ...]]:
    body = h.batch(dev, batch.batch_id)
    assert body["status"] == FINISHED
    return [(e["status"], e.get("revision") or e.get("winner_revision") or e.get("reason"))
            for e in body["entries"]]


def test_partial_conflicts_each_entry_decided_on_its_own(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    edited, stale, ahead, gone = new_id(), new_id(), new_id(), new_id()
    for f in (edited, stale, ahead, gone):
        commit_file(h, dev, f, 2)
    cursor = h.changes(dev)["cursor"]
    items = [BatchItem(new_id(), 0, chunks=(b"one", b"two")),
             BatchItem(edited, 2, chunks=(b"one",)),
             BatchItem(stale, 1),
             BatchItem(ahead, 7),
             BatchItem(new_id(), 0, chunks=(b"never sent",)),
             BatchItem(gone, 2, tombstone=True)]
    batch = h.stage_batch(dev, items, upload_chunks=False)
    for c in (b"one", b"two"):
        h.rt.blobs.put(chunk_key(dev.user_id, h_chunk(c)), c)
    pushes = record_pushes(h)
    out = h.commit(batch.key)
    assert out.status == FINISHED
    assert verdicts(h, dev, batch) == [
        ("accepted", 1), ("accepted", 3), ("conflict", 2),
        ("rejected", "base revision 7 is ahead of the head (2)"),
        ("rejected", "1 referenced chunk(s) were never uploaded"), ("accepted", 3)]
    feed = h.changes(dev, cursor)["changes"]
    assert [(c["seq"], c["file_id"], c["revision"], c["deleted"]) for c in feed] == [
        (cursor + 1, items[0].file_id, 1, False), (cursor + 2, edited, 3, False),
        (cursor + 3, gone, 3, True)]
    for item in (items[0], items[1]):  # each head points at its own slice of the bundle
        assert h.manifest(dev, item.file_id) == item.manifest
        url = h.head(dev, item.file_id)["manifest_url"]  # type: ignore[index]
        assert "X-Amz-SignedHeaders=host%3Brange" in url  # usable with that Range only
    assert h.head(dev, gone)["deleted"]  # type: ignore[index]
    assert h.head(dev, stale)["revision"] == 2  # type: ignore[index]
    assert h.head(dev, items[4].file_id) is None
    assert h.rt.blobs.size(batch.key) is None  # staging cleaned up
    bundle = h.rt.s3.get_object(Bucket=h.rt.settings.bucket,
                                Key=bundle_key(dev.user_id, batch.batch_id))["Body"].read()
    assert bundle == batch.bundle  # the loser's bytes stay retrievable too
    assert len(pushes) == 1 and pushes[0]["type"] == "batch"
    assert pushes[0]["counts"] == {"accepted": 3, "conflict": 1, "rejected": 2}
    assert pushes[0]["cursor"] == cursor + 3 and len(pushes[0]["entries"]) == 6


def h_chunk(data: bytes) -> str:
    from tests.harness import chunk_id
    return chunk_id(data)


def record_pushes(h: Harness) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    class Recorder:
        def upload_finished(self, user_id: str, device_id: str, result: Any) -> int:
            sent.append(result)
            return 1

    h.rt.__dict__["notifier"] = Recorder()
    return sent


def test_a_duplicate_event_changes_nothing(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0) for _ in range(3)])
    assert h.commit(batch.key).status == FINISHED
    before = table_items(h.rt)
    h.rt.blobs.put(batch.key, batch.bundle)  # a replayed PUT, then its event
    again = h.commit(batch.key)
    assert (again.status, again.detail) == (FINISHED, "duplicate")
    assert table_items(h.rt) == before and h.rt.blobs.size(batch.key) is None


@pytest.mark.parametrize("step", ["locked", "checked", "decided", "copied", "committed",
                                  "cleaned"])
def test_a_crash_at_any_step_then_a_retry_commits_each_entry_once(
        fast: Harness, step: str) -> None:
    h, dev = fast, fast.signup()
    items = [BatchItem(new_id(), 0) for _ in range(3)]
    batch = h.stage_batch(dev, items)
    with pytest.raises(Crash):
        h.commit(batch.key, crash_at(step))
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [("accepted", 1)] * 3
    assert [c["seq"] for c in h.changes(dev)["changes"]] == [1, 2, 3]
    assert h.rt.blobs.size(batch.key) is None


def test_a_crash_after_the_first_group_then_the_rerun_commits_exactly_the_rest(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    n = MAX_GROUP_ENTRIES + 5
    items = [BatchItem(new_id(), 0) for _ in range(n)]
    batch = h.stage_batch(dev, items)
    groups: list[list[int]] = []
    real = h.rt.batches.commit_group

    def counted(rec: Any, revisions: Any, *args: Any) -> None:
        groups.append(sorted(revisions))
        real(rec, revisions, *args)

    h.rt.batches.commit_group = counted  # type: ignore[method-assign]
    with pytest.raises(Crash):
        h.commit(batch.key, crash_at("committed"))
    assert groups == [list(range(MAX_GROUP_ENTRIES))]
    rec = h.rt.batches.get(batch.batch_id)
    assert rec and rec.open_entries() == list(range(MAX_GROUP_ENTRIES, n))
    assert h.commit(batch.key).status == FINISHED
    assert groups[1:] == [list(range(MAX_GROUP_ENTRIES, n))]  # exactly the rest
    feed = h.changes(dev)["changes"]
    assert [c["seq"] for c in feed] == list(range(1, n + 1))
    assert [c["file_id"] for c in feed] == [i.file_id for i in items]
    assert verdicts(h, dev, batch) == [("accepted", 1)] * n


def test_a_later_head_does_not_turn_a_committed_entry_into_a_conflict(fast: Harness) -> None:
    """Crash after group 1, another device edits a committed file, then the
    rerun: the entry's result is in the record, it stays accepted."""
    h, dev = fast, fast.signup()
    items = [BatchItem(new_id(), 0) for _ in range(MAX_GROUP_ENTRIES + 1)]
    batch = h.stage_batch(dev, items)
    with pytest.raises(Crash):
        h.commit(batch.key, crash_at("committed"))
    assert h.commit(h.stage(dev, items[0].file_id, 1).key).single.status == "accepted"
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [("accepted", 1)] * len(items)


def test_a_bundle_of_the_wrong_size_rejects_every_entry(world: World) -> None:
    h, a = world.h, world.a
    items = [BatchItem(world.a_file, 1), BatchItem(new_id(), 0)]
    declared = 48 + 2 * SIG_LEN  # the manifests, then a signature per entry
    for bundle in (b"", b"x" * (declared - 1), b"x" * (declared + 1)):
        batch = h.stage_batch(a, items, bundle=bundle)
        assert h.commit(batch.key).status == FINISHED
        reason = f"bundle is {len(bundle)} bytes but the entries declare {declared}"
        assert verdicts(h, a, batch) == [("rejected", reason)] * 2
        assert h.rt.blobs.size(bundle_key(a.user_id, batch.batch_id)) is None
    world.assert_heads_unchanged()


def test_an_absent_bundle_decides_nothing_until_the_sweeper(world: World) -> None:
    h, a = world.h, world.a
    batch = h.stage_batch(a, [BatchItem(world.a_file, 1)], put=False)
    assert h.commit(batch.key).status == "pending"  # a forged or early event
    assert h.batch(a, batch.batch_id)["status"] == "pending"
    pushes = record_pushes(h)
    report = sweep(h.rt, now=10**10)
    assert batch.batch_id in report.expired
    assert verdicts(h, a, batch) == [("rejected", "batch expired before its bundle arrived")]
    assert len(pushes) == 1
    world.assert_heads_unchanged()


def test_the_sweeper_finishes_a_batch_whose_event_was_lost(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0)])
    report = sweep(h.rt)  # nothing is old yet: the pending bundle is not an orphan
    assert report.orphans_deleted == [] and h.rt.blobs.size(batch.key) is not None
    report = sweep(h.rt, now=10**10)
    assert report.finished == [batch.batch_id]
    assert verdicts(h, dev, batch) == [("accepted", 1)]


def test_a_bundle_under_another_users_prefix_is_never_committed(world: World) -> None:
    h, a, b = world.h, world.a, world.b
    batch = h.stage_batch(a, [BatchItem(new_id(), 0)], put=False)
    forged = staging_key(b.user_id, batch.batch_id)
    h.rt.blobs.put(forged, batch.bundle)
    assert h.commit(forged).status == "ignored"
    assert h.rt.blobs.size(forged) is None
    assert h.get(f"/v1/batches/{batch.batch_id}", b).status_code == 404
    assert h.batch(a, batch.batch_id)["status"] == "pending"
    world.assert_heads_unchanged()


def test_bad_batch_requests_are_4xx_and_commit_nothing(world: World) -> None:
    h, a = world.h, world.a
    good = BatchItem(new_id(), 0).body()
    cases: list[tuple[Any, int, str, str]] = [
        ({"entries": [good, good]}, 400, "bad_request", "twice"),
        ({"entries": [good] + [BatchItem(new_id(), 0).body() for _ in range(1000)]}, 413,
         "too_large", "1000 entries"),
        ({"entries": [{**good, "file_id": "../../x"}]}, 400, "bad_request", "entries[0]"),
        ({"entries": [{**good, "manifest_size": 0}]}, 400, "bad_request", "manifest_size"),
        ({"entries": [{**good, "manifest_size": 2**40}]}, 400, "bad_request",
         "manifest_size"),
        ({"entries": [{**good, "base_revision": -1}]}, 400, "bad_request", "base_revision"),
        ({"entries": [{**good, "chunks": [{"id": "c" * 64, "size": 2**30}]}]}, 400,
         "bad_request", "chunk size"),
        ({"entries": []}, 400, "bad_request", "non-empty"),
        ({"entries": [good], "user_id": world.b.user_id}, 400, "bad_request", "unknown"),
        ("[" * 100_000, 400, "bad_request", "JSON"),
        ("x" * (2 * 1024 * 1024 + 1), 413, "too_large", "2097152"),
    ]

    def check(body: Any, status: int, error: str, words: str) -> None:
        expect(h.post("/v1/batches", body, a), status, error, words)

    each(cases, check)
    world.assert_unchanged()


def test_the_long_poll_is_answered_by_the_one_wake_up(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0), BatchItem(new_id(), 3)])
    got: list[dict[str, Any]] = []
    parked = threading.Event()
    waker, real_wait = h.rt.waker, h.rt.waker.wait

    def wait(topic: str, timeout_s: int) -> Any:
        parked.set()
        return real_wait(topic, timeout_s)

    waker.wait = wait  # type: ignore[method-assign]
    poll = threading.Thread(target=lambda: got.append(h.batch(dev, batch.batch_id, wait=10)))
    poll.start()
    assert parked.wait(10)
    reads: list[bool] = []
    real_get = h.rt.batches.get

    def counted(batch_id: str) -> Any:
        reads.append(threading.current_thread() is poll)
        return real_get(batch_id)

    h.rt.batches.get = counted  # type: ignore[method-assign]
    assert h.commit(batch.key).status == FINISHED
    poll.join(15)
    assert got and got[0]["status"] == FINISHED
    assert [e["status"] for e in got[0]["entries"]] == ["accepted", "rejected"]
    assert reads and True not in reads  # answered from the wake-up, not a second read
