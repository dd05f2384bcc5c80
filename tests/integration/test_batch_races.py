"""Batches racing with real threads against a real redis-server and moto over
HTTP: two handlers on one batch, a batch against single uploads of the same
files, a batch lock expiring mid-batch. Per file, invariant 1 holds: one
winner, each entry committed once, one feed entry per accepted version."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.config import Runtime
from chalicelib.core.batch import FINISHED, MAX_GROUP_ENTRIES
from chalicelib.core.decide import ACCEPTED, CONFLICT
from chalicelib.core.ids import new_id, staging_key
from tests.harness import BatchItem, Device, Harness, PendingBatch
from tests.integration.conftest import RuntimeFactory
from tests.integration.support import Steps, deliver, object_keys, wait_for

pytestmark = pytest.mark.integration


def twin(make_rt: RuntimeFactory, rt: Runtime, **overrides: str) -> Runtime:
    return make_rt(SEALSYNC_REDIS_URL=rt.settings.redis_url, **overrides)


def existing(h: Harness, dev: Device, n: int) -> list[str]:
    files = [new_id() for _ in range(n)]
    for f in files:
        assert deliver(h.rt, h.stage(dev, f, 0).key)[0].single.status == ACCEPTED
    return files


def verdicts(h: Harness, dev: Device, batch: PendingBatch) -> list[dict[str, Any]]:
    body = h.batch(dev, batch.batch_id)
    assert body["status"] == FINISHED
    return list(body["entries"])


def assert_one_feed_entry_per_accepted_version(h: Harness, dev: Device, cursor: int) -> None:
    feed = h.changes(dev, cursor)["changes"]
    assert [c["seq"] for c in feed] == list(range(cursor + 1, cursor + 1 + len(feed)))
    versions = [(c["file_id"], c["revision"]) for c in feed]
    assert len(set(versions)) == len(versions)  # nothing committed twice
    for file_id, revision in versions:
        head = h.rt.meta.get_revision(dev.user_id, file_id, revision)
        assert head is not None


@pytest.mark.parametrize("lock_ttl_ms", ["10000", "1"], ids=["lock", "lock-never-holds"])
def test_two_handlers_on_one_batch_commit_each_entry_once(
        h: Harness, make_rt: RuntimeFactory, lock_ttl_ms: str) -> None:
    dev = h.signup()
    old = existing(h, dev, 4)
    cursor = h.changes(dev)["cursor"]
    items = ([BatchItem(new_id(), 0) for _ in range(MAX_GROUP_ENTRIES + 4)]
             + [BatchItem(f, 1) for f in old[:2]] + [BatchItem(f, 0) for f in old[2:]])
    batch = h.stage_batch(dev, items)
    racers = [twin(make_rt, h.rt, SEALSYNC_LOCK_TTL_MS=lock_ttl_ms) for _ in range(2)]
    start = threading.Barrier(2)

    def handler(i: int) -> str:
        start.wait()
        return deliver(racers[i], batch.key)[0].status

    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(handler, range(2)))
    assert FINISHED in statuses
    got = verdicts(h, dev, batch)
    assert [e["status"] for e in got] == [ACCEPTED] * (len(items) - 2) + [CONFLICT] * 2
    assert [e.get("revision") for e in got[:-2]] == [1] * (len(items) - 4) + [2, 2]
    feed = h.changes(dev, cursor)["changes"]
    assert sorted(c["file_id"] for c in feed) == sorted(i.file_id for i in items[:-2])
    assert_one_feed_entry_per_accepted_version(h, dev, cursor)
    assert object_keys(h.rt, staging_key(dev.user_id, "")) == []


@pytest.mark.parametrize("lock_ttl_ms", ["10000", "1"], ids=["lock", "lock-never-holds"])
def test_a_batch_racing_single_uploads_has_one_winner_per_file(
        h: Harness, make_rt: RuntimeFactory, lock_ttl_ms: str) -> None:
    dev = h.signup()
    files = existing(h, dev, 6)
    cursor = h.changes(dev)["cursor"]
    batch = h.stage_batch(dev, [BatchItem(f, 1) for f in files])
    singles = [h.stage(dev, f, 1) for f in files]
    keys = [batch.key] + [s.key for s in singles]
    racer = twin(make_rt, h.rt, SEALSYNC_LOCK_TTL_MS=lock_ttl_ms)
    start = threading.Barrier(len(keys))

    def handler(key: str) -> str:
        start.wait()
        return deliver(racer, key)[0].status

    with ThreadPoolExecutor(len(keys)) as pool:
        list(pool.map(handler, keys))
    got = verdicts(h, dev, batch)
    for f, entry, single in zip(files, got, singles, strict=True):
        mine = h.status(dev, single.upload_id)
        assert sorted([entry["status"], mine["status"]]) == [ACCEPTED, CONFLICT], f
        won = batch.batch_id if entry["status"] == ACCEPTED else single.upload_id
        head = h.rt.meta.get_head(dev.user_id, f)
        assert head and (head.revision, head.upload_id) == (2, won)
        loser = mine if entry["status"] == ACCEPTED else entry
        assert loser["winner_revision"] == 2
    feed = h.changes(dev, cursor)["changes"]
    assert sorted(c["file_id"] for c in feed) == sorted(files)  # one winner each
    assert_one_feed_entry_per_accepted_version(h, dev, cursor)


def test_a_batch_lock_expiring_mid_batch_the_fence_alone_decides(
        h: Harness, rt: Runtime, make_rt: RuntimeFactory) -> None:
    """Batch A decides to accept all its files and stalls past its 200 ms
    locks; B takes one expired lock and commits that file. A's group is
    refused by the fence; A reads again: that entry is a conflict, the
    others are accepted. A's release leaves B's lock alone."""
    dev = h.signup()
    files = existing(h, dev, 5)
    cursor = h.changes(dev)["cursor"]
    batch = h.stage_batch(dev, [BatchItem(f, 1) for f in files])
    b_up = h.stage(dev, files[3], 1)
    rt_a = twin(make_rt, rt, SEALSYNC_LOCK_TTL_MS="200")
    rt_b = twin(make_rt, rt, SEALSYNC_LOCK_TTL_MS="30000")
    lock = rt.locks.key(dev.user_id, files[3])
    a_decided, b_committed, a_done = threading.Event(), threading.Event(), threading.Event()
    groups: list[list[int]] = []
    real_group = rt_a.batches.commit_group

    def a_group(rec: Any, revisions: Any, *args: Any) -> None:
        groups.append(sorted(revisions))
        real_group(rec, revisions, *args)

    rt_a.batches.commit_group = a_group  # type: ignore[method-assign]

    def a_stalls() -> None:
        a_decided.set()
        wait_for(b_committed, "B to commit")

    def b_holds_on() -> None:
        b_committed.set()
        wait_for(a_done, "A to finish")

    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(deliver, rt_a, batch.key, Steps({"decided": a_stalls}))
        wait_for(a_decided, "A to decide")
        b = pool.submit(deliver, rt_b, b_up.key, Steps({"cleaned": b_holds_on}))
        a_outcome, _ = a.result(timeout=60)
        b_token = rt.redis.get(lock)
        a_done.set()
        assert b.result(timeout=60)[0].single.status == ACCEPTED
    assert a_outcome.status == FINISHED
    assert b_token is not None  # B still held its lock when A released its own
    assert groups == [[0, 1, 2, 3, 4], [0, 1, 2, 4]]  # refused whole, then decided again
    got = verdicts(h, dev, batch)
    assert [e["status"] for e in got] == [ACCEPTED] * 3 + [CONFLICT, ACCEPTED]
    assert got[3]["winner_revision"] == 2
    feed = h.changes(dev, cursor)["changes"]
    assert [c["file_id"] for c in feed] == [files[3], files[0], files[1], files[2], files[4]]
    assert_one_feed_entry_per_accepted_version(h, dev, cursor)


def test_a_batch_longer_than_its_lock_ttl_keeps_its_locks(
        h: Harness, rt: Runtime, make_rt: RuntimeFactory) -> None:
    """Three groups, each stalled 1.1 s, under 3 s locks: the lease
    renews them before each group, so a single upload of one of its files
    never gets the lock while the batch commits (without renewal the locks
    lapse before the third group is done)."""
    dev = h.signup()
    n = 2 * MAX_GROUP_ENTRIES + 1
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0) for _ in range(n)])
    slow = twin(make_rt, rt, SEALSYNC_LOCK_TTL_MS="3000")
    rec = slow.batches.get(batch.batch_id)
    assert rec is not None
    keys = [slow.locks.key(dev.user_id, e.file_id) for e in rec.entries]
    held: list[int] = []

    def stall() -> None:
        time.sleep(1.1)
        held.append(int(rt.redis.exists(*keys)))

    outcome, _ = deliver(slow, batch.key, Steps({"committed": stall}, every=True))
    assert outcome.status == FINISHED and held == [n] * 3
    assert [e["status"] for e in verdicts(h, dev, batch)] == [ACCEPTED] * n
    assert rt.redis.exists(*keys) == 0  # released at the end


def test_a_file_locked_by_others_all_along_does_not_stall_the_batch(
        h: Harness, rt: Runtime, make_rt: RuntimeFactory) -> None:
    """One file of the batch is locked by someone else for longer than the
    batch may wait (a stream of single uploads, or a stuck holder): after a
    bounded wait the batch takes the other locks and commits; the busy
    file is decided by the fence (here: accepted, nothing else moved it)."""
    dev = h.signup()
    files = existing(h, dev, 3)
    batch = h.stage_batch(dev, [BatchItem(f, 1) for f in files])
    impatient = twin(make_rt, rt, SEALSYNC_LOCK_WAIT_S="0.3")
    busy = rt.locks.key(dev.user_id, files[1])
    rt.redis.set(busy, "someone else", px=30_000)
    outcome, failures = deliver(impatient, batch.key, attempts=1)
    assert outcome.status == FINISHED and failures == []
    assert [e["status"] for e in verdicts(h, dev, batch)] == [ACCEPTED] * 3
    assert rt.redis.get(busy) == b"someone else"  # never taken, never released
