"""The user's feed turn: commits of one user take turns on the feed counter.

Taken by the batch pipeline (batch_commit.py) around a batch's groups;
a v1 upload is a batch of one.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .adapters.meta import FenceLost
from .config import Runtime
from .core.errors import Unavailable

FEED_LOCK_BACKOFF_S = 0.01  # the feed lock is held for about one transaction (or batch)


@contextmanager
def feed_turn(rt: Runtime, user_id: str) -> Iterator[int | None]:
    """Hold the user's feed lock if we can, and yield the feed head Redis
    remembers (None: read it from the store).

    Best effort: the lock saves commits of one user's different files from
    racing on the feed counter and all but one losing the fence (measured:
    0.3 lost transactions per small file with 4 handlers, more with more),
    and the hint saves a read. Neither guards anything: without them (Redis
    down, the lock stuck, a stale hint) the fenced transaction alone decides,
    and a lost fence drops the hint so the retry reads the store."""
    key = rt.locks.feed_key(user_id)
    try:
        token: str | None = rt.locks.acquire(key, FEED_LOCK_BACKOFF_S)
    except Unavailable:  # LockBusy included
        token = None
    try:
        yield rt.locks.remembered_seq(user_id) if token is not None else None
    except FenceLost:
        rt.locks.remember_seq(user_id, None)
        raise
    finally:
        if token is not None:
            rt.locks.release(key, token)
