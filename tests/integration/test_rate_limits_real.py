"""The Redis token buckets against a real redis-server: threads racing one
bucket never spend a token twice (WATCH/MULTI), and the TTL forgets an idle
bucket."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from chalicelib.adapters.rate_limits import Buckets
from chalicelib.core.ids import new_id
from chalicelib.core.ratelimit import Rule
from local.services import RedisServer

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield c
    c.close()


def test_racing_threads_take_exactly_the_burst(client: redis.Redis) -> None:
    capacity, threads, per_thread = 25, 8, 10
    rule = Rule(f"race-{new_id()}", capacity, 1e-9)  # no refill during the race
    buckets = Buckets(client, b"k" * 32)
    allowed: list[bool] = []
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        for _ in range(per_thread):
            allowed.append(buckets.take(rule, "198.51.100.1", 1000.0).allowed)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert len(allowed) == threads * per_thread
    assert sum(allowed) == capacity  # not one more, whatever the interleaving


def test_an_idle_bucket_expires_when_it_would_be_full(client: redis.Redis) -> None:
    rule = Rule(f"ttl-{new_id()}", 2, 1.0)
    buckets = Buckets(client, b"k" * 32)
    buckets.take(rule, "who", 1000.0)
    ttl = client.ttl(buckets.key(rule, "who"))
    assert isinstance(ttl, int) and 0 < ttl <= rule.ttl_s() == 3
