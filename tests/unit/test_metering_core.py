"""core/metering.py: byte-seconds from TOTAL and hour buckets equal a
second-by-second integral of the stored level, for any commits at any times."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import metering as m
from chalicelib.core.errors import BadRequest

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def buckets_of(events: list[tuple[int, int]]) -> list[m.Bucket]:
    """What the store would hold after these (time, size) commits."""
    out: dict[int, dict[str, int]] = {}
    for at, size in events:
        fields = m.commit_delta(at, [size]).bucket_fields()
        b = out.setdefault(m.hour_of(at), {"db": 0, "bs": 0, "v": 0})
        for k, v in fields.items():
            b[k] += v
    return [m.Bucket(h, b["db"], b["bs"], b["v"]) for h, b in sorted(out.items())]


def integral(events: list[tuple[int, int]], start: int, end: int) -> int:
    """The slow truth: the level, second by second (events at t count from t)."""
    return sum(sum(s for at, s in events if at <= t) for t in range(start, end))


@given(st.lists(st.tuples(st.integers(0, 5 * m.HOUR - 1), st.integers(0, 10**6)),
                max_size=8),
       st.integers(0, 3), st.integers(1, 5 * m.HOUR))
def test_byte_seconds_are_the_integral_of_the_level(raw: list[tuple[int, int]],
                                                    start_h: int, end_off: int) -> None:
    events = [(T0 + at, size) for at, size in raw]
    start = T0 + start_h * m.HOUR
    end = start + end_off
    # `end` is "now": commits after it have not happened yet
    happened = [(at, s) for at, s in events if at < end]
    total = sum(s for _, s in happened)
    buckets = [b for b in buckets_of(happened) if b.hour >= start]
    assert m.byte_seconds(total, buckets, start, end) == integral(happened, start, end)


def test_usage_sums_the_period_and_a_day_series() -> None:
    events = [(T0 + 10, 1000), (T0 + m.HOUR * 30, 500)]
    period = m.Period(T0, T0 + 2 * 24 * m.HOUR)
    u = m.usage(1500, 2, buckets_of(events), period, now=T0 + 2 * 24 * m.HOUR)
    assert u.versions == 2 and u.stored_bytes == 1500
    assert u.byte_hours * m.HOUR == integral(events, T0, period.end) // 1
    assert [d["byte_seconds"] for d in u.daily] == [
        integral(events, T0, T0 + 86400), integral(events, T0 + 86400, T0 + 2 * 86400)]
    assert [d["stored_bytes"] for d in u.daily] == [1000, 1500]


def test_a_version_stored_this_second_shows_in_todays_level() -> None:
    """Its byte-seconds are still 0, but the chart (the day's level) shows it:
    CI once drew an empty chart for a file synced within the same second."""
    u = m.usage(700, 1, buckets_of([(T0 + 5, 700)]), m.month_of(T0), now=T0 + 5)
    assert u.daily[0]["byte_seconds"] == 0 and u.daily[0]["stored_bytes"] == 700


def test_a_running_period_counts_until_now() -> None:
    period = m.month_of(T0 + 100)
    u = m.usage(10, 1, buckets_of([(T0 + 50, 10)]), period, now=T0 + 150)
    assert u.until == T0 + 150 and u.byte_hours * m.HOUR == 10 * 100


def test_month_and_period_parsing() -> None:
    assert m.month_of(T0 + 5) == m.Period(T0, T0 + 31 * 86400)
    dec = m.month_of(T0 - 1)
    assert dec.end == T0 and dec.hours == 31 * 24
    assert m.parse_period(None, T0 + 5) == m.month_of(T0)
    got = m.parse_period({"from": str(T0 + 1), "to": str(T0 + 7199)}, T0 + 9999)
    assert got == m.Period(T0, T0 + 7200)
    for bad in ({"from": "x"}, {"from": str(T0), "to": str(T0 - 10)},
                {"from": "0", "to": str(T0)}, {"from": "-1"}):
        with pytest.raises(BadRequest):
            m.parse_period(bad, T0)


def test_charges_and_quota_levels() -> None:
    u = m.usage(m.GIB, 1, buckets_of([(T0, m.GIB)]), m.Period(T0, T0 + 730 * m.HOUR),
                now=T0 + 730 * m.HOUR)
    lines = m.charges(u, m.Prices(storage_gb_month=100))
    assert [(c.description, c.cents) for c in lines] == [("storage (GB-months)", 100)]
    assert [m.quota_level(b, 100) for b in (0, 79, 80, 99, 100, 500)] == [0, 0, 80, 80, 100, 100]
    with pytest.raises(ValueError):
        m.commit_delta(T0, [-1])
