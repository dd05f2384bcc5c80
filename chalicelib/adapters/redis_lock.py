"""The Redis locks: `SET NX PX` with a random token, released by a Lua
compare-and-delete so a handler whose lock expired can never release the
lock a newer holder took. One lock per file orders a file's commits; one
per user, held only around the feed append, orders that user's commits on
the feed counter (without it, concurrent commits of one user's different
files all but one lose the fence and start over).

The lock only makes commits cheap and ordered; correctness comes from the
fenced transaction in the store (invariant 2).
"""
from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from ..core.errors import Unavailable

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


# A batch's file locks, all or nothing: none is taken unless every one is
# free. One round trip for up to 1,000 keys; the caller sorts them (a fixed
# order, though all-or-nothing alone already rules out deadlock).
_ACQUIRE_ALL = """
for i = 1, #KEYS do
    if redis.call('exists', KEYS[i]) == 1 then return 0 end
end
for i = 1, #KEYS do
    redis.call('set', KEYS[i], ARGV[1], 'PX', ARGV[2])
end
return 1
"""

_RELEASE_ALL = """
local n = 0
for i = 1, #KEYS do
    if redis.call('get', KEYS[i]) == ARGV[1] then
        n = n + redis.call('del', KEYS[i])
    end
end
return n
"""

# After a bounded wait, a batch takes the locks that are free: a stream of
# other batches (v1 uploads) on some of its files can keep all-or-nothing from ever
# succeeding. One round trip; returns the keys taken.
_ACQUIRE_FREE = """
local taken = {}
for i = 1, #KEYS do
    if redis.call('set', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
        taken[#taken + 1] = KEYS[i]
    end
end
return taken
"""

# A long batch keeps its locks: each still ours gets a fresh TTL.
_EXTEND_ALL = """
local n = 0
for i = 1, #KEYS do
    if redis.call('get', KEYS[i]) == ARGV[1] then
        n = n + redis.call('pexpire', KEYS[i], ARGV[2])
    end
end
return n
"""

SEQ_HINT_TTL_S = 3600
# The share of the lock wait a batch spends on all-or-nothing before it takes
# what is free (the fence decides the files it could not lock).
ALL_OR_NOTHING_SHARE = 0.5


class LockBusy(Unavailable):
    """Another handler holds the lock for longer than we may wait; for the
    file lock, the event fails and is retried."""


class Locks:
    def __init__(self, client: redis.Redis, ttl_ms: int, wait_s: float) -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.wait_s = wait_s

    @staticmethod
    def key(user_id: str, file_id: str) -> str:
        # `{user}` is a hash tag: every file lock of a user is in one cluster
        # slot, so one script can take a batch's locks on a cluster-mode
        # Redis too (ElastiCache Serverless refuses CROSSSLOT scripts).
        return f"lock:{{{user_id}}}:{file_id}"

    @staticmethod
    def feed_key(user_id: str) -> str:
        return f"feedlock:{user_id}"

    @staticmethod
    def _seq_key(user_id: str) -> str:
        return f"feedseq:{user_id}"

    def remembered_seq(self, user_id: str) -> int | None:
        """The feed head the user's last commit wrote, if Redis still holds
        it: a hint that saves reading the counter. A wrong hint only loses
        the fence (the transaction checks `seq = :last`). Never raises."""
        try:
            raw = self.client.get(self._seq_key(user_id))
            return int(raw) if raw is not None else None
        except (redis.RedisError, ValueError):
            return None

    def remember_seq(self, user_id: str, seq: int | None) -> None:
        """Keep (or, with None, drop) the hint. Never raises."""
        try:
            if seq is None:
                self.client.delete(self._seq_key(user_id))
            else:
                self.client.set(self._seq_key(user_id), seq, ex=SEQ_HINT_TTL_S)
        except redis.RedisError:
            pass

    def acquire(self, key: str, max_delay_s: float = 0.2) -> str:
        """Take the lock, backing off (bounded, jittered); return its token.
        `max_delay_s` caps one backoff: short for a lock held briefly."""
        return self._take(lambda token: bool(self.client.set(key, token, nx=True,
                                                              px=self.ttl_ms)),
                          f"{key} is busy; retry later", max_delay_s)

    def _take(self, attempt: Callable[[str], bool], busy: str, max_delay_s: float) -> str:
        """Try `attempt(token)` until it succeeds or `wait_s` runs out."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_s
        delay = min(0.005, max_delay_s)
        while True:
            try:
                if attempt(token):
                    return token
            except redis.RedisError as exc:
                raise Unavailable(f"lock store unavailable: {type(exc).__name__}") from exc
            if time.monotonic() >= deadline:
                raise LockBusy(busy)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_delay_s)

    def release(self, key: str, token: str) -> bool:
        """Delete the lock only if it is still ours. Never raises: a lock we
        cannot release simply expires."""
        try:
            # Plain EVAL, not EVALSHA: the script is tiny, and there is no
            # NOSCRIPT round trip to fail (fakeredis drops the connection on it).
            return bool(self.client.eval(_RELEASE, 1, key, token))
        except redis.RedisError:
            return False

    def acquire_all(self, keys: list[str], max_delay_s: float = 0.2) -> str:
        """Take every lock in `keys` under one token, all or nothing (one Lua
        script per attempt), backing off like `acquire`."""
        ordered = sorted(set(keys))
        return self._take(
            lambda token: not ordered or bool(self.client.eval(
                _ACQUIRE_ALL, len(ordered), *ordered, token, self.ttl_ms)),
            f"{len(ordered)} file lock(s) of a batch are busy; retry later", max_delay_s)

    def acquire_batch(self, keys: list[str]) -> tuple[str, list[str]]:
        """A batch's locks: all or nothing for a share of the wait, then
        whatever is free (so a stream of batches of one on some of its files
        cannot starve it). Returns (token, the keys it holds); the files it
        does not hold are decided by the fence alone."""
        ordered = sorted(set(keys))
        patient = Locks(self.client, self.ttl_ms, self.wait_s * ALL_OR_NOTHING_SHARE)
        try:
            return patient.acquire_all(ordered), ordered
        except LockBusy:
            pass
        token = secrets.token_hex(16)
        try:
            taken = self.client.eval(_ACQUIRE_FREE, len(ordered), *ordered, token,
                                     self.ttl_ms) if ordered else []
            return token, sorted(k.decode() if isinstance(k, bytes) else str(k)
                                 for k in taken)
        except redis.RedisError as exc:
            raise Unavailable(f"lock store unavailable: {type(exc).__name__}") from exc

    def extend_all(self, keys: list[str], token: str) -> int:
        """A fresh TTL for each of `keys` still held with `token`; how many
        were. Never raises: a lock we cannot extend only costs a lost fence."""
        ordered = sorted(set(keys))
        try:
            return int(self.client.eval(_EXTEND_ALL, len(ordered), *ordered, token,
                                        self.ttl_ms)) if ordered else 0
        except redis.RedisError:
            return 0

    def release_all(self, keys: list[str], token: str) -> int:
        """Delete each of `keys` still held with `token`; how many were.
        Never raises: locks we cannot release simply expire."""
        ordered = sorted(set(keys))
        try:
            return int(self.client.eval(_RELEASE_ALL, len(ordered), *ordered, token)) \
                if ordered else 0
        except redis.RedisError:
            return 0

    @contextmanager
    def held_all(self, keys: list[str],
                 clock: Callable[[], float] = time.monotonic) -> Iterator[BatchLease]:
        """A batch's locks (acquire_batch) for the block; the lease renews
        them while a big batch commits."""
        token, held = self.acquire_batch(keys)
        try:
            yield BatchLease(self, held, token, clock)
        finally:
            self.release_all(held, token)

    @contextmanager
    def held(self, key: str) -> Iterator[str]:
        token = self.acquire(key)
        try:
            yield token
        finally:
            self.release(key, token)



class BatchLease:
    """The locks a batch holds, renewed (one script) whenever a third of
    their TTL has passed since the last renewal: a batch of 1,000 files may
    commit for longer than the TTL. Renewal is efficiency only; a lock
    that lapses anyway costs a lost fence, never a wrong commit."""

    def __init__(self, locks: Locks, keys: list[str], token: str,
                 clock: Callable[[], float]) -> None:
        self.locks, self.keys, self.token = locks, keys, token  # the keys it holds
        self.clock = clock
        self.renewed_at = clock()

    def renew_if_due(self) -> bool:
        """True if this call renewed the locks."""
        if self.clock() - self.renewed_at < self.locks.ttl_ms / 3000:
            return False
        self.locks.extend_all(self.keys, self.token)
        self.renewed_at = self.clock()
        return True
