"""Losing Redis loses no data (invariant 2): with the real redis-server
stopped, events fail retryably and write nothing; once it is back, the
redelivered events commit. A restart mid-commit drops the lock, not the
fence."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib.commit import commit_staging_object
from chalicelib.config import Runtime
from chalicelib.core.decide import ACCEPTED, CONFLICT, PENDING
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id, staging_key
from local.services import RedisServer
from tests.harness import Device, Harness
from tests.integration.conftest import RuntimeFactory
from tests.integration.support import (
    Steps,
    deliver,
    object_keys,
    table_items,
    wait_for,
)

pytestmark = pytest.mark.integration


def commit_first_revisions(h: Harness, dev: Device, files: list[str]) -> None:
    for f in files:
        up = h.stage(dev, f, 0)
        assert deliver(h.rt, up.key)[0].single.status == ACCEPTED


def test_redis_down_events_fail_retryably_then_commit_when_it_is_back(
        h: Harness, rt: Runtime, redis_up: RedisServer) -> None:
    dev = h.signup()
    old, new = [new_id() for _ in range(3)], [new_id() for _ in range(2)]
    commit_first_revisions(h, dev, old)
    cursor = h.changes(dev)["cursor"]
    ups = [h.stage(dev, f, 1) for f in old] + [h.stage(dev, old[0], 1)]  # two racers
    ups.append(h.stage(dev, new[0], 0))

    redis_up.stop()
    ups.append(h.stage(dev, new[1], 0))  # the API needs no Redis to take uploads
    before = table_items(rt)
    staged = object_keys(rt, staging_key(dev.user_id, ""))
    assert len(staged) == len(ups)
    for up in ups:
        with pytest.raises(Unavailable):
            commit_staging_object(rt, up.key)
    assert table_items(rt) == before  # nothing written
    assert object_keys(rt, staging_key(dev.user_id, "")) == staged
    t0 = time.monotonic()
    st = h.status(dev, ups[0].upload_id, wait=5)  # a long poll answers what it read
    assert st["status"] == PENDING and time.monotonic() - t0 < 4

    redis_up.start()  # same port, empty: every lock and wake-up is gone
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda up: deliver(rt, up.key)[0].single.status, ups))
    # the two racers on old[0]: one accepted, one conflict; all else accepted
    assert sorted(outcomes[0::3]) == [ACCEPTED, CONFLICT]
    assert outcomes[1:3] + outcomes[4:] == [ACCEPTED] * 4
    for up in ups:
        st = h.status(dev, up.upload_id)
        assert st["status"] in (ACCEPTED, CONFLICT)
        assert st.get("revision", st.get("winner_revision")) == up.base + 1
    feed = h.changes(dev, cursor)["changes"]
    assert [c["seq"] for c in feed] == list(range(cursor + 1, cursor + 6))
    assert sorted((c["file_id"], c["revision"]) for c in feed) == sorted(
        [(f, 2) for f in old] + [(f, 1) for f in new])
    assert object_keys(rt, staging_key(dev.user_id, "")) == []


def test_redis_dying_mid_commit_does_not_stop_the_commit(
        h: Harness, rt: Runtime, redis_up: RedisServer) -> None:
    """Past the lock, Redis is only for wake-ups and the release: both are
    best effort, so the durable commit completes."""
    dev, f = h.signup(), new_id()
    up = h.stage(dev, f, 0)
    steps = Steps({"decided": redis_up.stop})
    outcome, failures = deliver(rt, up.key, steps)
    assert (outcome.single.status, failures) == (ACCEPTED, [])
    assert steps.seen[-3:] == ["copied", "committed", "cleaned"]
    head = rt.meta.get_head(dev.user_id, f)
    assert head and (head.revision, head.upload_id) == (1, up.upload_id)
    assert h.status(dev, up.upload_id, wait=5)["status"] == ACCEPTED
    assert [(c["file_id"], c["revision"]) for c in h.changes(dev)["changes"]] == [(f, 1)]


def test_redis_restart_mid_commit_loses_the_lock_not_the_fence(
        h: Harness, rt: Runtime, redis_up: RedisServer, make_rt: RuntimeFactory) -> None:
    """A decides to accept; Redis restarts empty, so A's lock is gone; B
    takes the lock at once and commits from the same base. A's stale accept
    is refused by the fenced transaction."""
    dev, f = h.signup(), new_id()
    commit_first_revisions(h, dev, [f])
    cursor = h.changes(dev)["cursor"]
    a_up, b_up = h.stage(dev, f, 1), h.stage(dev, f, 1)
    rt_b = make_rt(SEALSYNC_REDIS_URL=rt.settings.redis_url)
    assert rt_b.redis.ping()  # B's connection predates the restart
    lock = rt.locks.key(dev.user_id, f)
    a_decided, b_done = threading.Event(), threading.Event()

    def restart_and_stall() -> None:
        assert rt.redis.exists(lock) == 1
        redis_up.stop()
        redis_up.start()
        a_decided.set()
        wait_for(b_done, "B to commit")

    a_steps = Steps({"decided": restart_and_stall})
    with ThreadPoolExecutor(1) as pool:
        a = pool.submit(deliver, rt, a_up.key, a_steps)
        wait_for(a_decided, "A to decide")
        b_outcome, _ = deliver(rt_b, b_up.key)
        b_done.set()
        a_outcome, _ = a.result(timeout=60)
    assert (a_outcome.single.status, b_outcome.single.status) == (CONFLICT, ACCEPTED)
    assert a_steps.seen == ["locked", "checked", "decided", "copied", "decided", "cleaned"]
    head = rt.meta.get_head(dev.user_id, f)
    assert head and (head.revision, head.upload_id) == (2, b_up.upload_id)
    assert h.status(dev, a_up.upload_id)["winner_revision"] == 2
    assert [(c["file_id"], c["revision"]) for c in h.changes(dev, cursor)["changes"]] == [
        (f, 2)]
