"""Token buckets in Redis: the math is core/ratelimit.py, this keeps state.

Each bucket is one hash `rl:{rule}:{key}` {t: tokens, a: when} with the
rule's refill time as TTL. A take is WATCH, read, compute, MULTI/SET/EXEC:
when two Lambdas race on one bucket, one EXEC fails and retries with the
other's result, so no token is spent twice (tests/integration races real
threads against redis-server). Keys are keyed BLAKE2b hashes of the source
IP or user id, so Redis never holds a client's address in clear.
"""
from __future__ import annotations

import hashlib
from typing import Any

from ..core.ratelimit import Bucket, Decision, Rule, take

ATTEMPTS = 8


class Buckets:
    def __init__(self, client: Any, key_secret: bytes) -> None:
        self.redis = client
        self.key_secret = key_secret[:64]

    def key(self, rule: Rule, who: str) -> str:
        digest = hashlib.blake2b(who.encode("utf-8", "surrogatepass"), digest_size=16,
                                 key=self.key_secret, person=b"sealsync-rl-v1").hexdigest()
        return f"rl:{rule.name}:{digest}"

    def take(self, rule: Rule, who: str, now: float) -> Decision:
        """Take one token from `who`'s bucket under `rule`. Redis errors
        propagate (the caller decides to fail open)."""
        from redis.exceptions import WatchError

        key = self.key(rule, who)
        for _ in range(ATTEMPTS):
            with self.redis.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    decision = take(rule, _bucket(pipe.hgetall(key)), now)
                    pipe.multi()
                    pipe.hset(key, mapping={"t": repr(decision.bucket.tokens),
                                            "a": repr(decision.bucket.at)})
                    pipe.expire(key, rule.ttl_s())
                    pipe.execute()
                    return decision
                except WatchError:
                    continue
        # Eight writers in a row beat us to this one bucket: it is hot, so
        # refusing this request for a second is the right answer anyway.
        return Decision(False, Bucket(0.0, now), 1)


def _bucket(raw: dict[bytes, bytes]) -> Bucket | None:
    try:
        return Bucket(float(raw[b"t"]), float(raw[b"a"])) if raw else None
    except (KeyError, ValueError):
        return None  # unreadable state: start full rather than lock anyone out
