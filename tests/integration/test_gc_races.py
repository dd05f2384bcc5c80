"""The collector racing commits with real threads, against moto over HTTP
(DynamoDB serialized as the real one executes requests) and a real
redis-server: a batch that dedups against a pack PUT long ago (a client's
remembered pack) and against a v1 chunk object it trusts from its resume
journal, committed while the `gc` job collects the same user. Whoever wins,
every committed head's chunks are readable afterwards, and after the
collector has finished its cycles too (docs/DESIGN.md "Pack and chunk
lifecycle")."""
from __future__ import annotations

import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from chalicelib import gc as collector
from chalicelib.core import gc as core
from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import chunk_key, new_id
from chalicelib.core.packs import pack_key
from tests.harness import BatchItem, Harness, chunk_id
from tests.integration.conftest import RuntimeFactory
from tests.integration.support import deliver
from tests.unit.test_pack_pipeline import make_pack, post_batch, put, read_chunk

pytestmark = pytest.mark.integration
ROUNDS = 30
LATER = 3 * 24 * 3600


def heads_readable(h: Harness, dev, expected: dict[str, dict[str, bytes]]) -> None:  # type: ignore[no-untyped-def]
    """Every committed head reads back, chunk for chunk."""
    for file_id, chunks in expected.items():
        assert read_chunk(h, dev, file_id) == chunks, file_id


def race(*actions: Callable[[], object]) -> None:
    """Run the actions on threads released together; re-raise any failure."""
    start = threading.Barrier(len(actions))
    errors: list[BaseException] = []

    def run(action: Callable[[], object]) -> None:
        try:
            start.wait()
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_commits_racing_the_collector_never_reference_a_deleted_object(
        h: Harness, make_rt: RuntimeFactory) -> None:
    committer = make_rt(SEALSYNC_REDIS_URL=h.rt.settings.redis_url)
    gc_rt = make_rt(SEALSYNC_REDIS_URL=h.rt.settings.redis_url)
    outcomes: Counter[str] = Counter()
    tally = core.Tally()
    rng = random.Random(15)
    for _ in range(ROUNDS):
        dev = h.signup()
        packed_blob, v1_blob = secrets.token_bytes(700), secrets.token_bytes(300)
        pid, data, decl = make_pack([packed_blob])
        put(h, pack_key(dev.user_id, pid), data)  # PUT by an earlier, killed pass
        put(h, chunk_key(dev.user_id, chunk_id(v1_blob)), v1_blob)  # in its journal
        items = [BatchItem(new_id(), 0, chunks=(packed_blob,)),
                 BatchItem(new_id(), 0, chunks=(v1_blob,)), BatchItem(new_id(), 0)]
        batch = post_batch(h, dev, items, [decl])
        put(h, batch.key, batch.bundle)
        delay = rng.random() * 0.05  # shifts where the collector meets the commit
        race(lambda key=batch.key: deliver(committer, key),
             lambda user=dev.user_id, wait=delay: (
                 time.sleep(wait),
                 collector.collect_user(gc_rt, user, int(time.time()) + LATER, tally)))
        body = h.batch(dev, batch.batch_id)
        assert body["status"] == FINISHED
        statuses = [e["status"] for e in body["entries"]]
        assert statuses[2] == "accepted"
        expected = {items[2].file_id: {}}
        for item, blob, status in zip(items[:2], (packed_blob, v1_blob), statuses, strict=False):
            outcomes[status] += 1
            if status == "accepted":
                expected[item.file_id] = {chunk_id(blob): blob}
            else:
                assert h.head(dev, item.file_id) is None
        heads_readable(h, dev, expected)
        # the collector finishes whatever it had started: still readable
        collector.collect_user(gc_rt, dev.user_id, int(time.time()) + LATER, core.Tally())
        heads_readable(h, dev, expected)
    assert outcomes["accepted"] + outcomes["rejected"] == 2 * ROUNDS
    print(f"\ngc race over {ROUNDS} rounds: entries {dict(outcomes)}; collector "
          f"doomed {tally.doomed}, rescued {tally.rescued}, deleted "
          f"{tally.chunks_deleted} chunk(s) and {tally.packs_deleted} pack(s)")
