"""`--bwlimit RATE`: one token bucket over every transfer of a client.

RATE is spelled as rclone spells it: a number with an optional binary
suffix, B, K, M, G or T (case-insensitive; an optional "i", "iB" or "/s"
after it is accepted too), so `512k` is 512 KiB/s and `10M` is 10 MiB/s.
Unlike rclone, where a bare number means KiB/s, a bare number here is
bytes per second (`--bwlimit 65536` is 64 KiB/s). `UP:DOWN` limits the two
directions separately (`10M:off`), and `off` or `0` means no limit.

Every chunk PUT and GET of the process takes its bytes from the same bucket
before they go on the wire, whichever thread sends them, so eight parallel
uploads share one rate instead of getting one each. The bucket is pure:
the clock and the sleep are parameters, which is how the tests check the
rate without timing anything.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

_UNITS: Final = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([bkmgt])?(?:i?b?)?(?:/s)?\s*$", re.I)
MIN_RATE: Final = 1024  # below 1 KiB/s a 16 MiB chunk takes hours: surely a typo
BURST_S: Final = 0.25  # the bucket holds a quarter second of tokens...
MIN_BURST: Final = 64 * 1024  # ...but at least one network read or write


class BadRate(ValueError):
    """The RATE given to --bwlimit is not one this module understands."""


def parse_rate(text: str) -> int | None:
    """Bytes per second for one RATE, or None for `off`/`0` (no limit)."""
    value = text.strip().lower()
    if value in ("off", "0", ""):
        return None
    m = _RATE.match(value)
    if m is None:
        raise BadRate(f"{text!r} is not a rate: use e.g. 512k, 10M, 1.5G or a number "
                      "of bytes per second")
    rate = int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])
    if rate == 0:
        return None
    if rate < MIN_RATE:
        raise BadRate(f"{text!r} is below the smallest limit, {MIN_RATE} bytes/s")
    return rate


@dataclass(frozen=True)
class Limits:
    """Bytes per second up and down; None is unlimited."""

    up: int | None
    down: int | None
    shared: bool = False  # one RATE for both: both directions draw from one bucket

    @classmethod
    def parse(cls, text: str) -> Limits:
        """`RATE` (both directions, one shared bucket) or `UP:DOWN`."""
        if ":" in text:
            up, _, down = text.partition(":")
            return cls(parse_rate(up), parse_rate(down))
        rate = parse_rate(text)
        return cls(rate, rate, shared=True)


class TokenBucket:
    """A rate limit shared by threads: `take(n)` returns once n bytes may go.

    Tokens accrue at `rate` per second up to `burst`. A taker reserves its
    bytes at once, going into debt if need be, and then sleeps off the debt
    outside the lock: concurrent takers queue in the order they asked, and
    none is starved by a stream of small ones."""

    def __init__(self, rate: int, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(MIN_BURST, int(rate * BURST_S))
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._at = clock()

    def take(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


@dataclass(frozen=True)
class Limiter:
    """The buckets a client's transfers draw from (None: that way is free)."""

    up: TokenBucket | None
    down: TokenBucket | None

    @classmethod
    def build(cls, limits: Limits, clock: Callable[[], float] = time.monotonic,
              sleep: Callable[[float], None] = time.sleep) -> Limiter | None:
        if limits.up is None and limits.down is None:
            return None
        up = TokenBucket(limits.up, clock=clock, sleep=sleep) if limits.up else None
        if limits.shared:
            return cls(up, up)
        down = TokenBucket(limits.down, clock=clock, sleep=sleep) if limits.down else None
        return cls(up, down)


class ThrottledBody:
    """A bytes body that `requests` sends by reading it in blocks, each
    block paid for from the bucket first. It has a length, so the request
    still carries Content-Length (a presigned S3 PUT refuses chunked bodies)."""

    def __init__(self, data: bytes | memoryview, bucket: TokenBucket) -> None:
        self._data = memoryview(data).cast("B")
        self._bucket = bucket
        self._pos = 0

    def __len__(self) -> int:
        return len(self._data)

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(len(self._data),
                                                                   self._pos + size)
        block = self._data[self._pos:end]
        self._bucket.take(len(block))
        self._pos = end
        return bytes(block)
