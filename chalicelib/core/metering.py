"""Metering, pure: what an account used, from the counters the commit and
the API keep (adapters/usage.py), never from a listing of S3.

Stored bytes are the bytes of every version the account keeps: each
accepted version's `size` (its manifest plus its chunks, as declared and
verified at commit), counted in full per version (dedup within an account
is the operator's saving, not billed separately). A version that expires
(core/retention.py: superseded or deleted for longer than the retention
window) is taken off by the same size, once, by the expiry's own
transaction.

Two kinds of counter item:
  TOTAL          bytes and versions now (moved in the commit's transaction)
  hour bucket h  what happened in [h, h + 3600): net byte delta `db`, the
                 byte-seconds that delta adds up to the hour's end `bs`
                 (Σ delta × (h + 3600 − t)), versions, PUT and GET URLs
                 issued, egress bytes those GETs can serve

Byte-seconds over [A, B) follow exactly, to the second, from TOTAL and the
buckets at or after A (see `byte_seconds`): no per-second sampling, no
listing, and every counter moves by ADD only, so one fenced transaction
(or one conditional update) moves it exactly once.
"""
from __future__ import annotations

import calendar
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

HOUR = 3600
GIB = 1024**3
MONTH_HOURS = 730  # the month a GB-month price means (AWS's convention)


def hour_of(t: float) -> int:
    """The start of the hour holding `t` (epoch seconds, UTC)."""
    return int(t) // HOUR * HOUR


@dataclass(frozen=True)
class Bucket:
    """One hour's counters (absent fields are zero)."""

    hour: int
    bytes_delta: int = 0
    byte_seconds: int = 0
    versions: int = 0
    puts: int = 0
    gets: int = 0
    egress: int = 0


@dataclass(frozen=True)
class CommitDelta:
    """What one commit (a version, or a batch group) adds, as of `at`."""

    at: int
    bytes_delta: int
    versions: int

    def bucket_fields(self) -> dict[str, int]:
        """The ADDs for the commit's hour bucket."""
        h = hour_of(self.at)
        return {"db": self.bytes_delta, "bs": self.bytes_delta * (h + HOUR - self.at),
                "v": self.versions}


def commit_delta(at: float, sizes: Iterable[int]) -> CommitDelta:
    """The delta of committing versions of these sizes at `at`."""
    sizes = list(sizes)
    if any(s < 0 for s in sizes):
        raise ValueError("a version's size is never negative")
    return CommitDelta(int(at), sum(sizes), len(sizes))


def expiry_delta(at: float, sizes: Iterable[int]) -> CommitDelta:
    """The delta of expiring versions of these (metered) sizes at `at`
    (core/retention.py): the commit's own measure, taken off. The hour
    bucket's `v` counts versions committed, so an expiry moves only the
    bytes there (`bucket_fields` minus `v`) and the versions on TOTAL."""
    added = commit_delta(at, sizes)
    return CommitDelta(added.at, -added.bytes_delta, -added.versions)


@dataclass(frozen=True)
class Period:
    """[start, end) in epoch seconds, whole hours."""

    start: int
    end: int

    @property
    def hours(self) -> int:
        return (self.end - self.start) // HOUR


def month_of(t: float) -> Period:
    """The calendar month (UTC) holding `t`: the billing period."""
    tm = time.gmtime(t)
    start = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
    y, m = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
    return Period(start, calendar.timegm((y, m, 1, 0, 0, 0)))


def byte_seconds(total_bytes: int, buckets: Sequence[Bucket], start: int, end: int) -> int:
    """Byte-seconds stored over [start, end), exactly. `total_bytes` is the
    TOTAL now, `buckets` every bucket with hour ≥ hour_of(start); `end` must
    not lie before the last commit it should count (use min(to, now)).

    stored(start) = total − Σ deltas at or after start's hour (start is an
    hour boundary); over [start, end) that level is held end − start
    seconds, and each delta δ at t < end adds δ × (end − t) =
    bs + db × (end − (h + 3600)) summed over its bucket."""
    if start % HOUR:
        raise ValueError("start must be an hour boundary")
    level = total_bytes - sum(b.bytes_delta for b in buckets if b.hour >= start)
    out = level * max(0, end - start)
    for b in buckets:
        if start <= b.hour < end:
            out += b.byte_seconds + b.bytes_delta * (end - (b.hour + HOUR))
    return out


@dataclass(frozen=True)
class Usage:
    """An account's usage over a period, as `GET /v1/account/usage` tells it."""

    period: Period
    until: int  # the period's end, or now if it is still running
    stored_bytes: int  # now
    versions_total: int
    byte_hours: float
    versions: int
    puts: int
    gets: int
    egress_bytes: int
    daily: list[dict[str, int]] = field(default_factory=list)

    def body(self) -> dict[str, object]:
        return {"from": self.period.start, "to": self.period.end, "until": self.until,
                "stored_bytes": self.stored_bytes, "versions_total": self.versions_total,
                "byte_hours": round(self.byte_hours, 3),
                "gb_months": round(self.byte_hours / GIB / MONTH_HOURS, 9),
                "versions": self.versions, "put_requests": self.puts,
                "get_requests": self.gets, "egress_bytes": self.egress_bytes,
                "daily": self.daily}


def usage(total_bytes: int, versions_total: int, buckets: Sequence[Bucket],
          period: Period, now: float) -> Usage:
    """Sum the buckets of `period` (given every bucket at or after its
    start) into the period's usage, with a per-day series for the chart."""
    until = max(period.start, min(period.end, int(now)))
    inside = [b for b in buckets if period.start <= b.hour < period.end]
    days: dict[int, dict[str, int]] = {}
    for day in range(period.start, until, 24 * HOUR):
        days[day] = {"day": day, "byte_seconds": 0, "stored_bytes": 0, "puts": 0, "gets": 0,
                     "egress": 0}
    for day in days:
        stop = min(day + 24 * HOUR, until)
        days[day]["byte_seconds"] = byte_seconds(total_bytes, buckets, day, stop)
        # the level at the day's end (now, for today): what the chart draws, so
        # a file stored a moment ago shows at once, where its average is still 0
        days[day]["stored_bytes"] = total_bytes if stop == until else total_bytes - sum(
            b.bytes_delta for b in buckets if b.hour >= stop)
    for b in inside:
        d = days.get(period.start + (b.hour - period.start) // (24 * HOUR) * 24 * HOUR)
        if d is not None:
            d["puts"] += b.puts
            d["gets"] += b.gets
            d["egress"] += b.egress
    return Usage(period=period, until=until, stored_bytes=total_bytes,
                 versions_total=versions_total,
                 byte_hours=byte_seconds(total_bytes, buckets, period.start, until) / HOUR,
                 versions=sum(b.versions for b in inside), puts=sum(b.puts for b in inside),
                 gets=sum(b.gets for b in inside),
                 egress_bytes=sum(b.egress for b in inside), daily=list(days.values()))


def parse_period(params: dict[str, str] | None, now: float) -> Period:
    """`from`/`to` (epoch seconds) from a query, widened to whole hours;
    both absent: the current month. At most 366 days, never inverted."""
    from .errors import BadRequest
    from .requests import query_int

    if not params or (params.get("from") is None and params.get("to") is None):
        return month_of(now)
    limit = 366 * 24 * HOUR
    if params.get("from") is None:  # `to` alone: the month before it
        end = query_int(params, "to", 0, 1, 2**40)
        start = month_of(end - 1).start
    else:  # `from` alone: until now, at most the longest period
        start = query_int(params, "from", 0, 0, 2**40)
        end = query_int(params, "to", min(max(start + 1, int(now)), start + limit), 0, 2**40)
    if end <= start:
        raise BadRequest("`to` must be after `from`")
    start, end = hour_of(start), -(-end // HOUR) * HOUR
    if end - start > limit:
        raise BadRequest("a usage period is at most 366 days")
    return Period(start, end)


# -- prices -----------------------------------------------------------------
@dataclass(frozen=True)
class Prices:
    """What the operator charges, in US cents (docs/ACCOUNT.md)."""

    storage_gb_month: float = 6.0
    per_1000_puts: float = 0.5
    per_10000_gets: float = 0.4
    egress_gb: float = 12.0
    quota_bytes: int = 50 * GIB  # the plan's storage quota: warnings at 80 %, 100 %


@dataclass(frozen=True)
class Charge:
    description: str
    quantity: float
    cents: int


def charges(u: Usage, prices: Prices) -> list[Charge]:
    """The period's line items, each rounded to the cent (never below 0)."""
    gb_months = u.byte_hours / GIB / MONTH_HOURS
    lines = [
        Charge("storage (GB-months)", gb_months, round(gb_months * prices.storage_gb_month)),
        Charge("upload requests (thousands)", u.puts / 1000,
               round(u.puts / 1000 * prices.per_1000_puts)),
        Charge("download requests (ten thousands)", u.gets / 10000,
               round(u.gets / 10000 * prices.per_10000_gets)),
        Charge("download traffic (GB)", u.egress_bytes / GIB,
               round(u.egress_bytes / GIB * prices.egress_gb)),
    ]
    return [c for c in lines if c.cents > 0]


def quota_level(stored_bytes: int, quota_bytes: int) -> int:
    """The highest warning threshold reached: 0, 80 or 100 (percent)."""
    if quota_bytes <= 0:
        return 0
    if stored_bytes >= quota_bytes:
        return 100
    return 80 if stored_bytes * 100 >= quota_bytes * 80 else 0
