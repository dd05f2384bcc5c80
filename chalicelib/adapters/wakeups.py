"""Long-poll wake-ups through Redis lists: no sleep-and-reread loops.

The committer RPUSHes a token to `wake:{topic}` and sets a short expiry. A
waiter BLPOPs it and pushes it straight back (a relay), so every waiter on
the same topic wakes, and a waiter that arrives after the commit returns at
once. Losing Redis loses no data: waiters then answer with what they read.
"""
from __future__ import annotations

import redis

WAKE_TTL_S = 120


class Waker:
    def __init__(self, client: redis.Redis, blocking: redis.Redis) -> None:
        self.client = client
        self.blocking = blocking

    def wake(self, *topics: str) -> None:
        """Best effort: a failed wake only means waiters time out and reread."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for topic in topics:
                pipe.rpush(topic, b"1")
                pipe.expire(topic, WAKE_TTL_S)
            pipe.execute()
        except redis.RedisError:
            pass

    def wait(self, topic: str, timeout_s: int) -> bool:
        """Block until `topic` is woken or `timeout_s` passes."""
        if timeout_s <= 0:
            return False
        try:
            got = self.blocking.blpop([topic], timeout=timeout_s)
            if got is None:
                return False
            self.wake(topic)  # relay to the next waiter
            return True
        except redis.RedisError:
            return False
