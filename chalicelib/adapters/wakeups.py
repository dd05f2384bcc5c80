"""Long-poll wake-ups through Redis lists: no sleep-and-reread loops.

The committer RPUSHes a payload to `wake:{topic}` and sets a short expiry. A
waiter BLPOPs it and pushes it straight back (a relay), so every waiter on
the same topic wakes, and a waiter that arrives after the commit returns at
once. Losing Redis loses no data: waiters then answer with what they read.

The payload is `1`, or for an upload's topic the upload's terminal result,
written only after the durable write: the waiter can answer without reading
the record again (terminal states never change). A payload it cannot use
sends it back to the store.
"""
from __future__ import annotations

import redis

WAKE_TTL_S = 120


class Waker:
    def __init__(self, client: redis.Redis, blocking: redis.Redis) -> None:
        self.client = client
        self.blocking = blocking

    def wake(self, *topics: str, payload: bytes = b"1") -> None:
        """Best effort: a failed wake only means waiters time out and reread."""
        self.wake_each(dict.fromkeys(topics, payload))

    def wake_each(self, payloads: dict[str, bytes]) -> None:
        """Wake each topic with its own payload, in one round trip."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for topic, payload in payloads.items():
                pipe.rpush(topic, payload)
                pipe.expire(topic, WAKE_TTL_S)
            pipe.execute()
        except redis.RedisError:
            pass

    def wait(self, topic: str, timeout_s: int) -> bytes | None:
        """Block until `topic` is woken (its payload) or `timeout_s` passes (None)."""
        if timeout_s <= 0:
            return None
        try:
            got = self.blocking.blpop([topic], timeout=timeout_s)
            if got is None:
                return None
            raw = got[1]
            payload = raw.encode() if isinstance(raw, str) else bytes(raw)
            self.wake(topic, payload=payload)  # relay to the next waiter
            return payload
        except redis.RedisError:
            return None
