"""Contract tests of the adapters against the real things: the Redis lock and
the wake-ups on a real redis-server, the fenced commit on moto over HTTP."""
from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from chalicelib.adapters.meta import FenceLost
from chalicelib.adapters.redis_lock import LockBusy, Locks
from chalicelib.adapters.wakeups import Waker
from chalicelib.config import Runtime
from chalicelib.core.batch import BatchRecord, Entry, EntryResult
from chalicelib.core.decide import ACCEPTED, CONFLICT, PENDING, REJECTED
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id
from local.services import RedisServer, free_port
from tests.integration.support import table_items

pytestmark = pytest.mark.integration

TIMEOUT_S = 10  # an upper bound for things that should take milliseconds


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield c
    c.close()


def lock_key() -> str:
    return f"lock:{new_id()}:{new_id()}"


# -- Locks ---------------------------------------------------------------------
def test_lock_excludes_every_other_holder(client: redis.Redis) -> None:
    locks, key, n = Locks(client, ttl_ms=10_000, wait_s=TIMEOUT_S), lock_key(), 8
    start = threading.Barrier(n)
    inside, most, entered = [0], [0], []
    guard = threading.Lock()

    def contend(i: int) -> None:
        start.wait()
        with locks.held(key) as token:
            with guard:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            assert client.get(key) == token.encode()  # a Redis round trip inside
            entered.append(i)
            with guard:
                inside[0] -= 1

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(contend, range(n)))
    assert most[0] == 1
    assert sorted(entered) == list(range(n))
    assert client.exists(key) == 0  # the last holder released it


def test_busy_lock_raises_lock_busy_after_the_bounded_wait(client: redis.Redis) -> None:
    key = lock_key()
    holder = Locks(client, ttl_ms=30_000, wait_s=0).acquire(key)
    waiter = Locks(client, ttl_ms=30_000, wait_s=0.3)
    t0 = time.monotonic()
    with pytest.raises(LockBusy) as exc:
        waiter.acquire(key)
    waited = time.monotonic() - t0
    assert 0.3 <= waited < 2.0
    assert isinstance(exc.value, Unavailable)  # retryable: the event is redelivered
    assert client.get(key) == holder.encode()  # the holder is untouched


def test_lock_expires_after_its_ttl(client: redis.Redis) -> None:
    key = lock_key()
    short = Locks(client, ttl_ms=150, wait_s=0)
    first = short.acquire(key)
    assert 0 < client.pttl(key) <= 150
    with pytest.raises(LockBusy):
        short.acquire(key)  # no wait: it is still held
    second = Locks(client, ttl_ms=10_000, wait_s=TIMEOUT_S).acquire(key)
    assert second != first
    assert client.get(key) == second.encode()


def test_stale_token_cannot_release_a_newer_holders_lock(client: redis.Redis) -> None:
    key = lock_key()
    old = Locks(client, ttl_ms=100, wait_s=0)
    stale = old.acquire(key)
    new = Locks(client, ttl_ms=10_000, wait_s=TIMEOUT_S)
    fresh = new.acquire(key)  # waits out the first TTL
    assert old.release(key, stale) is False
    assert client.get(key) == fresh.encode()
    assert new.release(key, fresh) is True
    assert client.exists(key) == 0
    assert new.release(key, fresh) is False  # releasing twice is harmless


def test_lock_store_down_is_unavailable_and_release_never_raises() -> None:
    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",  # as Runtime builds it
                                socket_connect_timeout=1)
    locks = Locks(down, ttl_ms=1000, wait_s=TIMEOUT_S)
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as exc:
        locks.acquire(lock_key())
    assert not isinstance(exc.value, LockBusy)
    assert time.monotonic() - t0 < 2.0  # fails fast, does not wait out wait_s
    assert locks.release(lock_key(), "token") is False


# -- Waker -----------------------------------------------------------------------
@pytest.fixture
def waker(redis_server: RedisServer) -> Iterator[tuple[Waker, str]]:
    """A Waker whose blocking connections carry a unique client name, so the
    test can see (CLIENT LIST) exactly when its waiters are parked in BLPOP."""
    name = f"waiter-{secrets.token_hex(4)}"
    plain = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    blocking = redis.Redis.from_url(redis_server.url, socket_timeout=TIMEOUT_S + 5,
                                    client_name=name)
    yield Waker(plain, blocking), name
    plain.close()
    blocking.close()


def parked(w: Waker, name: str) -> int:
    return sum(1 for c in w.client.client_list()
               if c.get("name") == name and c.get("cmd") == "blpop")


def until_parked(w: Waker, name: str, n: int) -> None:
    """Poll the server's own view of blocked clients (not a sleep)."""
    deadline = time.monotonic() + TIMEOUT_S
    while parked(w, name) < n:
        assert time.monotonic() < deadline, f"{n} waiters never blocked"
        time.sleep(0.005)


def topic() -> str:
    return f"wake:test:{new_id()}"


def test_wait_returns_as_soon_as_woken_from_another_thread(
        waker: tuple[Waker, str]) -> None:
    w, name = waker
    t = topic()
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(w.wait, t, TIMEOUT_S)
        until_parked(w, name, 1)
        t0 = time.monotonic()
        w.wake(t)
        assert got.result(timeout=TIMEOUT_S) == b"1"
        assert time.monotonic() - t0 < 2.0


def test_one_wake_reaches_every_waiter_through_the_relay(
        waker: tuple[Waker, str]) -> None:
    w, name = waker
    t, n = topic(), 5
    with ThreadPoolExecutor(n) as pool:
        waiting = [pool.submit(w.wait, t, TIMEOUT_S) for _ in range(n)]
        until_parked(w, name, n)
        w.wake(t, payload=b'{"status": "accepted"}')  # each waiter relays it
        assert [f.result(timeout=TIMEOUT_S) for f in waiting] == [
            b'{"status": "accepted"}'] * n
    # the token is left behind (with an expiry) for whoever arrives late
    assert w.client.llen(t) == 1
    assert 0 < w.client.ttl(t) <= 120


def test_a_wake_before_the_wait_is_not_lost(waker: tuple[Waker, str]) -> None:
    w, _ = waker
    t = topic()
    w.wake(t)
    t0 = time.monotonic()
    assert w.wait(t, TIMEOUT_S) == b"1"
    assert time.monotonic() - t0 < 2.0


def test_wait_times_out_with_none(waker: tuple[Waker, str]) -> None:
    w, _ = waker
    t = topic()
    t0 = time.monotonic()
    assert w.wait(t, 1) is None
    assert 0.9 <= time.monotonic() - t0 < 5.0
    assert w.wait(t, 0) is None
    w.wake(topic())  # another topic does not wake this one
    assert w.wait(t, 1) is None


def test_waker_with_redis_down_neither_raises_nor_blocks() -> None:
    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0",
                                socket_connect_timeout=1)
    w = Waker(down, down)
    t0 = time.monotonic()
    w.wake(topic())
    assert w.wait(topic(), 5) is None
    assert time.monotonic() - t0 < 3.0


# -- Batches: the fenced commit on moto over HTTP -------------------------------
# A v1 upload is a batch of one: these prove, on the real protocol, what the
# single-upload commit's tests proved (one head, revision, feed entry and
# result per transaction; a stale base or feed counter writes nothing; a
# terminal result is written once; one winner with no lock at all).
def one(user: str, file_id: str, base: int, tombstone: bool = False) -> BatchRecord:
    entry = Entry(file_id, base, 10, tombstone, (secrets.token_hex(32),), 100)
    return BatchRecord(new_id(), user, new_id(), (entry,), PENDING, 1_000, detached=(None,))


def created(rt: Runtime, rec: BatchRecord) -> BatchRecord:
    rt.batches.create(rec, expires_at=10**10)
    return rec


def commit(rt: Runtime, rec: BatchRecord, revision: int, last: int) -> None:
    """The one group of a batch of one, as batch_commit.py writes it."""
    rt.batches.commit_group(rec, {0: revision}, {0: last + 1}, last,
                            f"manifests/{rec.batch_id}", [0], 2_000)


def test_a_group_writes_head_revision_feed_and_result(meta_rt: Runtime) -> None:
    meta, user, f = meta_rt.meta, new_id(), new_id()
    rec = created(meta_rt, one(user, f, 0))
    commit(meta_rt, rec, 1, 0)
    head = meta.get_head(user, f)
    assert head and (head.revision, head.upload_id, head.manifest_key) == (
        1, rec.batch_id, f"manifests/{rec.batch_id}")
    assert head.chunk_ids == rec.entries[0].chunk_ids
    assert meta.get_revision(user, f, 1) == head
    assert [(c.seq, c.file_id, c.revision) for c in meta.changes(user, 0, 10)] == [(1, f, 1)]
    done = meta_rt.batches.get(rec.batch_id)
    assert done and done.results == {0: EntryResult(ACCEPTED, revision=1, seq=1)}
    assert list(meta.pending_before(10**9)) == [rec.batch_id]  # until finished
    assert meta_rt.batches.finish(rec.batch_id, 2_001)
    assert list(meta.pending_before(10**9)) == []  # left the pending index


def test_commit_with_a_stale_base_raises_fence_lost_and_writes_nothing(
        meta_rt: Runtime) -> None:
    user, f = new_id(), new_id()
    first, racer = created(meta_rt, one(user, f, 0)), created(meta_rt, one(user, f, 0))
    commit(meta_rt, first, 1, 0)
    before = table_items(meta_rt)
    with pytest.raises(FenceLost):
        commit(meta_rt, racer, 1, 1)  # head is 1, not 0
    ahead = created(meta_rt, one(user, f, 5))
    before_ahead = table_items(meta_rt)
    with pytest.raises(FenceLost):
        commit(meta_rt, ahead, 6, 1)  # head is 1, not 5
    assert table_items(meta_rt) == before_ahead
    assert [it for it in before_ahead if it["pk"]["S"] != f"UP#{ahead.batch_id}"] == before
    racer_now = meta_rt.batches.get(racer.batch_id)
    assert racer_now and racer_now.status == PENDING and racer_now.results == {}


def test_commit_with_a_stale_feed_counter_raises_fence_lost(meta_rt: Runtime) -> None:
    """Two files of one user share the feed counter: a commit that read the
    counter before another file's commit must not reuse its seq."""
    user = new_id()
    a, b = created(meta_rt, one(user, new_id(), 0)), created(meta_rt, one(user, new_id(), 0))
    commit(meta_rt, a, 1, 0)
    before = table_items(meta_rt)
    with pytest.raises(FenceLost):
        commit(meta_rt, b, 1, 0)  # read the feed head before a's commit
    assert table_items(meta_rt) == before
    commit(meta_rt, b, 1, 1)
    assert meta_rt.meta.feed_head(user) == 2


def test_a_terminal_result_is_written_once(meta_rt: Runtime) -> None:
    user, f = new_id(), new_id()
    winner, loser = created(meta_rt, one(user, f, 0)), created(meta_rt, one(user, f, 0))
    commit(meta_rt, winner, 1, 0)
    meta_rt.batches.write_results(loser, {0: EntryResult(CONFLICT, winner_revision=1)})
    before = table_items(meta_rt)
    # a second result (another handler's) leaves the first as it is
    meta_rt.batches.write_results(loser, {0: EntryResult(REJECTED, reason="late")})
    # a rejection of the accepted entry is refused by its revision's check
    meta_rt.batches.write_results(winner, {0: EntryResult(REJECTED, reason="late")})
    # a commit of the finished entry from the right base: the state check
    # (no result for it yet) cancels the whole transaction
    again = BatchRecord(**{**loser.__dict__, "entries": (
        Entry(**{**loser.entries[0].__dict__, "base_revision": 1}),)})
    with pytest.raises(FenceLost):
        commit(meta_rt, again, 2, 1)
    assert table_items(meta_rt) == before
    got = meta_rt.batches.get(loser.batch_id)
    assert got and got.results == {0: EntryResult(CONFLICT, winner_revision=1)}
    assert meta_rt.batches.finish(loser.batch_id, 2_002)
    assert not meta_rt.batches.finish(loser.batch_id, 2_003)  # twice is harmless


def test_fence_holds_under_concurrent_commits(meta_rt: Runtime) -> None:
    """No lock at all: eight batches of one for one file, from the same base,
    race straight into the store; exactly one transaction lands."""
    user, f, n = new_id(), new_id(), 8
    recs = [created(meta_rt, one(user, f, 0)) for _ in range(n)]
    start = threading.Barrier(n)

    def race(rec: BatchRecord) -> str:
        start.wait()
        try:
            commit(meta_rt, rec, 1, 0)
            return rec.batch_id
        except FenceLost:
            return ""

    with ThreadPoolExecutor(n) as pool:
        won = [u for u in pool.map(race, recs) if u]
    assert len(won) == 1
    head = meta_rt.meta.get_head(user, f)
    assert head and head.upload_id == won[0] and head.revision == 1
    assert len(meta_rt.meta.changes(user, 0, 100)) == 1
    results = [(meta_rt.batches.get(r.batch_id) or r).results for r in recs]
    assert sorted(len(r) for r in results) == [0] * (n - 1) + [1]


def test_revisions_reads_the_bases_an_edit_names_in_batches_of_100(meta_rt: Runtime) -> None:
    """Meta.revisions (the bases of entries sent as chunk ranges) on moto over
    HTTP: each file's revision as committed, in its stored order, absent ones
    left out, more than one BatchGetItem page."""
    user = new_id()
    files = [new_id() for _ in range(120)]
    for i, f in enumerate(files):
        commit(meta_rt, created(meta_rt, one(user, f, 0)), 1, i)
    recs = {f: meta_rt.meta.get_revision(user, f, 1) for f in files}
    got = meta_rt.meta.revisions(user, {**dict.fromkeys(files, 1), new_id(): 1,
                                        files[0]: 1, files[1]: 2})
    assert set(got) == set(files) - {files[1]}  # files[1] has no revision 2
    assert all(got[f] == recs[f] for f in got)
