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

from chalicelib.adapters.meta import AlreadyFinished, FenceLost, Meta
from chalicelib.adapters.redis_lock import LockBusy, Locks
from chalicelib.adapters.wakeups import Waker
from chalicelib.config import Runtime
from chalicelib.core.decide import ACCEPTED, CONFLICT, PENDING, REJECTED
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id
from chalicelib.core.records import UploadRecord
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


# -- Meta: the fenced commit on moto over HTTP -------------------------------------
def record(user: str, file_id: str, base: int, tombstone: bool = False) -> UploadRecord:
    return UploadRecord(upload_id=new_id(), user_id=user, device_id=new_id(),
                        file_id=file_id, base_revision=base, manifest_size=10,
                        chunk_ids=(secrets.token_hex(32),), size=100, tombstone=tombstone,
                        status=PENDING, created=1_000)


def created(meta: Meta, rec: UploadRecord) -> UploadRecord:
    meta.create_upload(rec, expires_at=10**10)
    return rec


def test_commit_accept_writes_head_revision_feed_and_result(meta_rt: Runtime) -> None:
    meta, user, f = meta_rt.meta, new_id(), new_id()
    rec = created(meta, record(user, f, 0))
    assert meta.commit_accept(rec, 1, "manifests/x", 2_000) == 1
    head = meta.get_head(user, f)
    assert head and (head.revision, head.upload_id, head.manifest_key) == (1, rec.upload_id,
                                                                         "manifests/x")
    assert head.chunk_ids == rec.chunk_ids
    assert meta.get_revision(user, f, 1) == head
    assert [(c.seq, c.file_id, c.revision) for c in meta.changes(user, 0, 10)] == [(1, f, 1)]
    done = meta.get_upload(rec.upload_id)
    assert done and (done.status, done.revision) == (ACCEPTED, 1)
    assert list(meta.pending_before(10**9)) == []  # left the pending index


def test_commit_with_a_stale_base_raises_fence_lost_and_writes_nothing(
        meta_rt: Runtime) -> None:
    meta, user, f = meta_rt.meta, new_id(), new_id()
    first, racer = created(meta, record(user, f, 0)), created(meta, record(user, f, 0))
    meta.commit_accept(first, 1, "manifests/first", 2_000)
    before = table_items(meta_rt)
    with pytest.raises(FenceLost):
        meta.commit_accept(racer, 1, "manifests/racer", 2_001)  # head is 1, not 0
    ahead = created(meta, record(user, f, 5))
    before_ahead = table_items(meta_rt)
    with pytest.raises(FenceLost):
        meta.commit_accept(ahead, 6, "manifests/ahead", 2_002)  # head is 1, not 5
    assert table_items(meta_rt) == before_ahead
    assert [it for it in before_ahead if it["pk"]["S"] != f"UP#{ahead.upload_id}"] == before
    racer_now = meta.get_upload(racer.upload_id)
    assert racer_now and racer_now.status == PENDING


def test_commit_with_a_stale_feed_counter_raises_fence_lost(
        meta_rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two files of one user share the feed counter: a commit that read the
    counter before another file's commit must not reuse its seq."""
    meta, user = meta_rt.meta, new_id()
    a, b = created(meta, record(user, new_id(), 0)), created(meta, record(user, new_id(), 0))
    meta.commit_accept(a, 1, "manifests/a", 2_000)
    before = table_items(meta_rt)
    monkeypatch.setattr(meta, "feed_head", lambda user_id: 0)  # read before a's commit
    with pytest.raises(FenceLost):
        meta.commit_accept(b, 1, "manifests/b", 2_001)
    assert table_items(meta_rt) == before
    monkeypatch.undo()
    assert meta.commit_accept(b, 1, "manifests/b", 2_001) == 2


def test_a_terminal_upload_cannot_be_finished_again(meta_rt: Runtime) -> None:
    meta, user, f = meta_rt.meta, new_id(), new_id()
    winner, loser = created(meta, record(user, f, 0)), created(meta, record(user, f, 0))
    meta.commit_accept(winner, 1, "manifests/w", 2_000)
    meta.finish(loser.upload_id, CONFLICT, 2_001, winner=1, mkey="manifests/l")
    before = table_items(meta_rt)
    with pytest.raises(AlreadyFinished):
        meta.finish(loser.upload_id, REJECTED, 2_002, reason="late")
    with pytest.raises(AlreadyFinished):
        meta.finish(winner.upload_id, CONFLICT, 2_002, winner=7)
    # a commit of an already finished upload from the right base: the result
    # item's condition cancels the whole transaction
    again = UploadRecord(**{**loser.__dict__, "base_revision": 1})
    with pytest.raises(AlreadyFinished):
        meta.commit_accept(again, 2, "manifests/l", 2_003)
    assert table_items(meta_rt) == before
    got = meta.get_upload(loser.upload_id)
    assert got and (got.status, got.winner_revision, got.manifest_key) == (
        CONFLICT, 1, "manifests/l")


def test_fence_holds_under_concurrent_commits(meta_rt: Runtime) -> None:
    """No lock at all: eight commits of one file from the same base race
    straight into the store; exactly one transaction lands."""
    meta, user, f, n = meta_rt.meta, new_id(), new_id(), 8
    recs = [created(meta, record(user, f, 0)) for _ in range(n)]
    start = threading.Barrier(n)

    def commit(rec: UploadRecord) -> str:
        start.wait()
        try:
            meta.commit_accept(rec, 1, f"manifests/{rec.upload_id}", 2_000)
            return rec.upload_id
        except FenceLost:
            return ""

    with ThreadPoolExecutor(n) as pool:
        won = [u for u in pool.map(commit, recs) if u]
    assert len(won) == 1
    head = meta.get_head(user, f)
    assert head and head.upload_id == won[0] and head.revision == 1
    assert len(meta.changes(user, 0, 100)) == 1
    statuses = sorted((meta.get_upload(r.upload_id) or r).status for r in recs)
    assert statuses == [ACCEPTED] + [PENDING] * (n - 1)
