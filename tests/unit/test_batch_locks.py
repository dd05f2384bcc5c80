"""A batch's file locks in one round trip: all or nothing, one token,
released by compare-and-delete. The same tests run on fakeredis here and on
a real redis-server in tests/integration/test_batch_locks_real.py."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import fakeredis
import pytest
import redis

from chalicelib.adapters.redis_lock import LockBusy, Locks
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    yield fakeredis.FakeRedis(server=fakeredis.FakeServer())


def keys(n: int) -> list[str]:
    user = new_id()
    return [Locks.key(user, new_id()) for _ in range(n)]


def test_all_keys_are_taken_with_one_token_and_released(client: redis.Redis) -> None:
    locks, ks = Locks(client, 10_000, 0), keys(50)
    token = locks.acquire_all(ks)
    assert {client.get(k) for k in ks} == {token.encode()}
    assert all(0 < client.pttl(k) <= 10_000 for k in ks)
    assert locks.release_all(ks, token) == 50
    assert client.exists(*ks) == 0
    assert locks.release_all(ks, token) == 0  # twice is harmless
    assert locks.acquire_all([]) and locks.release_all([], "x") == 0


def test_a_users_file_locks_share_one_cluster_slot() -> None:
    from redis.crc import key_slot

    ks = keys(200)
    assert len({key_slot(k.encode()) for k in ks}) == 1


def test_one_held_key_means_none_is_taken(client: redis.Redis) -> None:
    ks = keys(10)
    other = Locks(client, 10_000, 0).acquire(ks[7])
    with pytest.raises(LockBusy) as exc:
        Locks(client, 10_000, 0.2).acquire_all(ks)
    assert isinstance(exc.value, Unavailable)  # retryable
    assert client.exists(*ks) == 1 and client.get(ks[7]) == other.encode()


def test_a_batch_lock_excludes_single_file_locks_and_vice_versa(client: redis.Redis) -> None:
    ks = keys(5)
    locks = Locks(client, 10_000, 0.1)
    token = locks.acquire_all(ks)
    for k in ks:
        with pytest.raises(LockBusy):
            locks.acquire(k)
    locks.release_all(ks, token)
    single = locks.acquire(ks[2])
    with pytest.raises(LockBusy):
        locks.acquire_all(ks)
    locks.release(ks[2], single)
    assert locks.acquire_all(ks)


def test_release_leaves_keys_another_holder_took(client: redis.Redis) -> None:
    ks = keys(4)
    short = Locks(client, 100, 0)
    stale = short.acquire_all(ks)
    time.sleep(0.25)  # expired
    fresh = Locks(client, 10_000, 0).acquire(ks[1])
    assert short.release_all(ks, stale) == 0  # expired keys are gone, ks[1] is not ours
    assert client.get(ks[1]) == fresh.encode()


def test_batch_locks_expire(client: redis.Redis) -> None:
    ks = keys(3)
    Locks(client, 150, 0).acquire_all(ks)
    with pytest.raises(LockBusy):
        Locks(client, 150, 0).acquire_all(ks[1:2])
    assert Locks(client, 10_000, 5).acquire_all(ks[::-1])  # waits out the TTL


def test_overlapping_batches_and_singles_never_hold_a_key_together(
        client: redis.Redis) -> None:
    ks = keys(6)
    sets = [ks[0:3], ks[2:5], ks[4:6] + ks[0:1], [ks[3]], [ks[5]], ks]
    holders: dict[str, int] = {}
    guard = threading.Lock()
    bad: list[str] = []
    start = threading.Barrier(len(sets))

    def contend(i: int) -> None:
        locks = Locks(client, 10_000, 10)
        start.wait()
        for _ in range(5):
            with locks.held_all(sets[i]) as lease:
                with guard:
                    bad.extend(k for k in lease.keys if k in holders)
                    holders.update(dict.fromkeys(lease.keys, i))
                time.sleep(0.002)
                with guard:
                    for k in lease.keys:
                        del holders[k]

    with ThreadPoolExecutor(len(sets)) as pool:
        list(pool.map(contend, range(len(sets))))
    assert bad == [] and client.exists(*ks) == 0


def test_a_stream_of_single_locks_cannot_starve_a_batch(client: redis.Redis) -> None:
    """Single uploads keep one of the batch's files locked nearly all the
    time, so all or nothing never succeeds: after its share of the wait the
    batch takes every other lock (the fence decides the busy file).

    The single's lock is held throughout (a stream whose gaps are too short
    to matter): a thread re-taking it in a loop made the outcome depend on
    the scheduler, and a loaded CI machine once handed the batch the gap."""
    ks = keys(4)
    singles = Locks(client, 10_000, 5)
    with singles.held(ks[2]):
        busy = client.get(ks[2])
        batch = Locks(client, 10_000, 0.4)
        with pytest.raises(LockBusy):  # all or nothing alone starves
            batch.acquire_all(ks)
        with batch.held_all(ks) as lease:
            assert set(lease.keys) == set(ks) - {ks[2]}
            assert {client.get(k) for k in lease.keys} == {lease.token.encode()}
        assert client.exists(*lease.keys) == 0  # released
        assert client.get(ks[2]) == busy  # the single's lock untouched


def test_all_free_locks_are_taken_all_or_nothing(client: redis.Redis) -> None:
    ks = keys(5)
    with Locks(client, 10_000, 1).held_all(ks) as lease:
        assert lease.keys == sorted(ks)


def test_a_lease_renews_the_locks_it_holds_and_only_those(client: redis.Redis) -> None:
    """A batch committing for longer than the TTL keeps its locks: renewed
    once a third of the TTL has passed; a key someone else took meanwhile is
    left alone."""
    ks = keys(3)
    now = [100.0]
    locks = Locks(client, 300, 0)
    with locks.held_all(ks, clock=lambda: now[0]) as lease:
        assert not lease.renew_if_due()  # just taken
        time.sleep(0.2)
        now[0] += 0.2
        client.delete(ks[0])
        other = Locks(client, 10_000, 0).acquire(ks[0])
        assert lease.renew_if_due()
        assert all(200 < client.pttl(k) <= 300 for k in ks[1:])
        time.sleep(0.2)  # past the first TTL: still held
        assert {client.get(k) for k in ks[1:]} == {lease.token.encode()}
        assert client.get(ks[0]) == other.encode() and client.pttl(ks[0]) > 9_000
