"""What the account routes do: usage now (and, in billing.py, what it costs).

Usage comes from the counters the commit's transaction and the API keep
(adapters/usage.py), summed by the pure core (core/metering.py)."""
from __future__ import annotations

import time
from typing import Any

from .config import Runtime
from .core import metering
from .core.tokens import Claims


def usage_of(rt: Runtime, user_id: str, period: metering.Period,
             now: float) -> metering.Usage:
    """The account's usage over `period`: TOTAL plus the buckets since its
    start (one GetItem, one Query)."""
    total, versions = rt.usage.total(user_id)
    buckets = rt.usage.buckets(user_id, period.start)
    return metering.usage(total, versions, buckets, period, now)


def usage(rt: Runtime, who: Claims, params: dict[str, str] | None) -> dict[str, Any]:
    """GET /v1/account/usage?from=&to=: the current month without them."""
    now = time.time()
    got = usage_of(rt, who.user_id, metering.parse_period(params, now), now)
    prices = rt.settings.prices
    body = got.body()
    body["quota_bytes"] = prices.quota_bytes
    body["estimated_cents"] = sum(c.cents for c in metering.charges(got, prices))
    return body
