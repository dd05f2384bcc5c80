"""Token buckets for abuse limits: pure math, no clock and no store.

A bucket holds up to `capacity` tokens and refills at `per_s` tokens a
second; each request takes one. A full bucket allows a burst of `capacity`,
after which requests pass at the refill rate. State is two numbers (tokens
left, when they were counted), so the adapter keeps it in one Redis hash
with a TTL of the time to refill completely (an idle bucket is a full one,
and costs nothing to forget).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Rule:
    """One limit: `name` keys it in the store (e.g. "tokens-ip")."""

    name: str
    capacity: float
    per_s: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_s <= 0:
            raise ValueError(f"rule {self.name}: capacity >= 1 and per_s > 0")

    def ttl_s(self) -> int:
        """After this long untouched, the bucket is full again: forget it."""
        return math.ceil(self.capacity / self.per_s) + 1


@dataclass(frozen=True)
class Bucket:
    tokens: float
    at: float


@dataclass(frozen=True)
class Decision:
    allowed: bool
    bucket: Bucket
    retry_after_s: int  # 0 when allowed; else whole seconds until one token is back


def take(rule: Rule, bucket: Bucket | None, now: float) -> Decision:
    """Take one token at time `now` from `bucket` (None: never used, full).

    A clock that went backwards refills nothing rather than draining."""
    if bucket is None:
        tokens = rule.capacity
    else:
        tokens = min(rule.capacity, bucket.tokens + max(0.0, now - bucket.at) * rule.per_s)
    if tokens >= 1:
        return Decision(True, Bucket(tokens - 1, now), 0)
    wait = (1 - tokens) / rule.per_s
    return Decision(False, Bucket(tokens, now), max(1, math.ceil(wait)))


@dataclass(frozen=True)
class Rates:
    """The limits on the unauthenticated routes. Per source IP on every
    request, before any work; per account only after a successful
    authentication, so nobody can drain another account's bucket by
    naming its user id. Sign-up also has one global bucket, against
    sign-ups spread over many addresses."""

    signup_ip: Rule = Rule("signup-ip", 10, 10 / 3600)
    signup_all: Rule = Rule("signup-all", 500, 500 / 3600)
    devices_ip: Rule = Rule("devices-ip", 20, 20 / 3600)
    devices_account: Rule = Rule("devices-account", 10, 10 / 3600)
    tokens_ip: Rule = Rule("tokens-ip", 120, 1.0)
    tokens_account: Rule = Rule("tokens-account", 60, 60 / 3600)
    pairing_ip: Rule = Rule("pairing-ip", 10, 10 / 3600)  # joins: each burns one mailbox

    def scaled(self, factor: float) -> Rates:
        """Every rule's burst and rate times `factor` (SEALSYNC_RATE_SCALE:
        the local stack and tests, where every client shares 127.0.0.1)."""
        if factor == 1:
            return self
        return replace(self, **{f.name: _scale(getattr(self, f.name), factor)
                                for f in fields(self)})


def _scale(rule: Rule, factor: float) -> Rule:
    return Rule(rule.name, max(1.0, rule.capacity * factor), rule.per_s * factor)
