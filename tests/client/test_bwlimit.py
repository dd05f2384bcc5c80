"""`--bwlimit`: the rate parser, and a token bucket that holds its rate over
threads. Time is a fake clock that sleeping advances: no test waits."""
from __future__ import annotations

import threading

import pytest
from sealsync_client.bwlimit import (
    BadRate,
    Limiter,
    Limits,
    ThrottledBody,
    TokenBucket,
    parse_rate,
)

KiB, MiB = 1024, 1024 * 1024


@pytest.mark.parametrize("text, rate", [
    ("10M", 10 * MiB), ("10m", 10 * MiB), ("512k", 512 * KiB), ("512K", 512 * KiB),
    ("1.5G", int(1.5 * 1024 * MiB)), ("65536", 65536), ("65536b", 65536),
    ("10MiB", 10 * MiB), ("10Mi", 10 * MiB), ("10M/s", 10 * MiB), (" 2T ", 2 * 1024**4),
    (".5M", MiB // 2), ("off", None), ("OFF", None), ("0", None), ("0k", None),
])
def test_rates_are_read_as_rclone_writes_them(text: str, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "10X", "-1M", "1e6", "M", "10 M B s", "1,5M",
                                  "100", "1000b"])
def test_what_is_not_a_rate_is_refused_clearly(text: str) -> None:
    with pytest.raises(BadRate, match="rate|smallest"):
        parse_rate(text)


def test_up_and_down_are_limited_apart_or_together() -> None:
    assert Limits.parse("1M") == Limits(MiB, MiB, shared=True)
    assert Limits.parse("1M:off") == Limits(MiB, None)
    assert Limits.parse("off:256k") == Limits(None, 256 * KiB)
    assert Limiter.build(Limits.parse("off")) is None
    both = Limiter.build(Limits.parse("1M"))
    assert both is not None and both.up is both.down  # one RATE: one shared bucket
    apart = Limiter.build(Limits.parse("1M:1M"))
    assert apart is not None and apart.up is not apart.down
    up_only = Limiter.build(Limits.parse("1M:off"))
    assert up_only is not None and up_only.down is None


class FakeClock:
    """now() and sleep(d): a thread that sleeps d wakes d after the moment
    it last read the clock, and the clock never runs backwards, so sleeps
    on many threads overlap as real ones do instead of adding up."""

    def __init__(self) -> None:
        self.t = 0.0
        self.lock = threading.Lock()
        self.slept = 0.0
        self.seen = threading.local()

    def now(self) -> float:
        with self.lock:
            self.seen.t = self.t
            return self.t

    def sleep(self, d: float) -> None:
        with self.lock:
            self.slept += d
            self.t = max(self.t, getattr(self.seen, "t", self.t) + d)


def test_one_taker_gets_the_rate_within_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, clock=clock.now, sleep=clock.sleep)
    sent = 0
    while sent < 20 * MiB:
        bucket.take(64 * KiB)
        sent += 64 * KiB
    # 20 MiB at 1 MiB/s: 20 s, less the burst the bucket starts with.
    assert 20 - bucket.burst / MiB - 0.01 <= clock.t <= 20.01


def test_eight_threads_share_one_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4 * MiB, clock=clock.now, sleep=clock.sleep)
    per_thread = 8 * MiB

    def send() -> None:
        for _ in range(per_thread // (16 * KiB)):
            bucket.take(16 * KiB)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = 8 * per_thread
    expected = (total - bucket.burst) / bucket.rate  # 16 s: not 2 s, as 8 buckets would give
    assert expected * 0.95 <= clock.t <= expected * 1.05 + 0.01


def test_a_burst_after_idle_time_is_capped() -> None:
    clock = FakeClock()
    bucket = TokenBucket(MiB, burst=256 * KiB, clock=clock.now, sleep=clock.sleep)
    clock.t = 3600.0  # an hour idle earns no more than one burst
    bucket.take(256 * KiB)
    assert clock.slept == 0
    bucket.take(MiB)
    assert clock.slept == pytest.approx(1.0)


def test_a_throttled_body_pays_for_every_block_and_keeps_its_length() -> None:
    clock = FakeClock()
    bucket = TokenBucket(64 * KiB, burst=64 * KiB, clock=clock.now, sleep=clock.sleep)
    data = bytes(range(256)) * 1024  # 256 KiB
    body = ThrottledBody(data, bucket)
    assert len(body) == len(data)  # requests sends Content-Length, never chunked
    out = b""
    while block := body.read(8192):
        out += block
    assert out == data
    assert clock.t == pytest.approx((len(data) - 64 * KiB) / (64 * KiB))
