"""The batch-lock tests of tests/unit/test_batch_locks.py, on a real
redis-server (its Lua, its expiry)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from local.services import RedisServer
from tests.unit.test_batch_locks import (  # noqa: F401 - collected here too
    test_a_batch_lock_excludes_single_file_locks_and_vice_versa,
    test_a_lease_renews_the_locks_it_holds_and_only_those,
    test_a_stream_of_single_locks_cannot_starve_a_batch,
    test_all_free_locks_are_taken_all_or_nothing,
    test_all_keys_are_taken_with_one_token_and_released,
    test_batch_locks_expire,
    test_one_held_key_means_none_is_taken,
    test_overlapping_batches_and_singles_never_hold_a_key_together,
    test_release_leaves_keys_another_holder_took,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield c
    c.close()


def test_redis_down_is_unavailable_and_release_all_never_raises() -> None:
    from chalicelib.adapters.redis_lock import LockBusy, Locks
    from chalicelib.core.errors import Unavailable
    from local.services import free_port

    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    locks = Locks(down, ttl_ms=1000, wait_s=10)
    with pytest.raises(Unavailable) as exc:
        locks.acquire_all(["lock:a:b", "lock:a:c"])
    assert not isinstance(exc.value, LockBusy)
    assert locks.release_all(["lock:a:b"], "token") == 0
