"""Abuse limits on the public routes (sign-up, enrolment, tokens), called
at the top of each route (per source IP) and right after authentication
(per account). Over the limit: 429 with Retry-After.

If Redis is down the limits fail open, logged: these routes authenticate
with a 256-bit auth_key, so a limit is about abuse and cost, not guessing,
and locking every user out while Redis recovers would be the worse failure.
"""
from __future__ import annotations

import logging
import time

from .config import Runtime
from .core.errors import TooManyRequests
from .core.ratelimit import Rule

log = logging.getLogger("sealsync.limits")


def charge(rt: Runtime, rule: Rule, who: str) -> None:
    """Take one token from `who`'s bucket, or raise TooManyRequests."""
    from redis.exceptions import RedisError

    try:
        decision = rt.rate_buckets.take(rule, who, time.time())
    except RedisError as exc:
        log.warning("rate limit %s not enforced: redis unavailable (%s)", rule.name,
                    type(exc).__name__)
        return
    if not decision.allowed:
        raise TooManyRequests(f"too many requests ({rule.name}); retry in "
                              f"{decision.retry_after_s} s", decision.retry_after_s)


def charge_ip(rt: Runtime, route: str, source_ip: str | None) -> None:
    """The per-address limits of a public route ("signup", "devices", "tokens",
    "pairing")."""
    rates = rt.settings.rates
    ip = source_ip or "unknown"
    if route == "signup":
        charge(rt, rates.signup_ip, ip)
        charge(rt, rates.signup_all, "all")
    elif route == "devices":
        charge(rt, rates.devices_ip, ip)
    elif route == "tokens":
        charge(rt, rates.tokens_ip, ip)
    elif route == "pairing":
        charge(rt, rates.pairing_ip, ip)
    else:
        raise ValueError(f"no rate limits for route {route!r}")


def charge_account(rt: Runtime, route: str, user_id: str) -> None:
    """The per-account limit, charged once the caller proved the account's auth_key."""
    rates = rt.settings.rates
    charge(rt, rates.devices_account if route == "devices" else rates.tokens_account, user_id)
