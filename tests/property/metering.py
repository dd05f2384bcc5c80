"""Metering against the truth, after every step of the commit state machine:
the usage counters (adapters/usage.py) must equal what the table stores,
whatever events were duplicated, replayed, late, crashed or raced.

  TOTAL.b            = Σ size of every revision kept, not expired   (to the byte)
  TOTAL.v            = the number of revisions kept, not expired
  Σ buckets db       = TOTAL.b                   (no delta lost or doubled)
  Σ buckets v        = every revision committed (an expiry moves only bytes there)
  byte-seconds until now, from the counters (core/metering.py)
                     = Σ size × (min(now, expired) − committed), per revision
"""
from __future__ import annotations

import time
from typing import Any

from chalicelib.core.metering import Bucket, byte_seconds, hour_of
from tests.property.world import Snapshot


def check_usage(snap: Snapshot, user_id: str, now: float | None = None) -> None:
    revisions = [it for it in snap.items if it["pk"].startswith(f"R#{user_id}#")]
    mine = [it for it in snap.items if it["pk"] == f"U#{user_id}"]
    total: dict[str, Any] = next((it for it in mine if it["sk"] == "TOTAL"), {})
    buckets = [Bucket(hour=int(it["sk"][2:]), bytes_delta=int(it.get("db", 0)),
                      byte_seconds=int(it.get("bs", 0)), versions=int(it.get("v", 0)))
               for it in mine if it["sk"].startswith("H#")]
    kept = [it for it in revisions if "expired" not in it]
    stored = sum(int(it.get("size", 0)) for it in kept)
    assert int(total.get("b", 0)) == stored, ("stored bytes", total, stored)
    assert int(total.get("v", 0)) == len(kept), ("versions", total, len(kept))
    assert sum(b.bytes_delta for b in buckets) == stored, "hour buckets lost or doubled bytes"
    assert sum(b.versions for b in buckets) == len(revisions)
    if not revisions:
        return
    end = int(time.time() if now is None else now) + 2  # an expiry may be stamped now + 1
    start = hour_of(min(int(it["committed"]) for it in revisions))
    truth = sum(int(it.get("size", 0))
                * max(0, min(end, int(it.get("expired", end))) - int(it["committed"]))
                for it in revisions)
    assert byte_seconds(stored, buckets, start, end) == truth, "byte-hours drifted"
