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
from functools import partial

import pytest

from chalicelib import gc as collector
from chalicelib import retention
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


def _expire_after(wait: float, rt, user: str, file_id: str, window: int, at: int,  # type: ignore[no-untyped-def]
                  expired: Counter[int]) -> None:
    time.sleep(wait)
    t = retention.Tally()
    retention.expire_file(rt, user, file_id, window, at, t)
    expired[t.expired] += 1


def _collect_after(wait: float, rt, user: str, at: int) -> None:  # type: ignore[no-untyped-def]
    time.sleep(wait)
    collector.collect_user(rt, user, at, core.Tally())


def test_expiry_racing_commits_and_the_collector_keeps_every_head_and_counts_once(
        h: Harness, make_rt: RuntimeFactory) -> None:
    """Version retention (chalicelib/retention.py) on real threads: a batch
    that dedups against the chunk of a revision being expired (a new file)
    and supersedes the head of the file being expired, committed while two
    retention runs race each other and the collector collects the user.
    Whoever wins: every head reads back, the expired revision is expired
    once, and the usage TOTAL is exactly the sizes of the revisions kept."""
    committer = make_rt(SEALSYNC_REDIS_URL=h.rt.settings.redis_url)
    runs = [make_rt(SEALSYNC_REDIS_URL=h.rt.settings.redis_url) for _ in range(2)]
    gc_rt = make_rt(SEALSYNC_REDIS_URL=h.rt.settings.redis_url)
    outcomes: Counter[str] = Counter()
    expired: Counter[int] = Counter()
    rng = random.Random(14)
    window = h.rt.settings.retention_days * 24 * 3600
    for _ in range(ROUNDS // 2):
        dev = h.signup()
        old, new, newer = (secrets.token_bytes(n) for n in (900, 400, 300))
        a = new_id()
        for base, blob in ((0, old), (1, new)):
            pid, data, decl = make_pack([blob])
            put(h, pack_key(dev.user_id, pid), data)
            batch = post_batch(h, dev, [BatchItem(a, base, chunks=(blob,))], [decl])
            put(h, batch.key, batch.bundle)
            deliver(committer, batch.key)
        pid, data, decl = make_pack([newer])
        put(h, pack_key(dev.user_id, pid), data)
        items = [BatchItem(new_id(), 0, chunks=(old,)),  # dedup: the chunk is known now
                 BatchItem(a, 2, chunks=(newer,))]  # supersedes the head meanwhile
        batch = post_batch(h, dev, items, [decl])
        put(h, batch.key, batch.bundle)
        at = int(time.time()) + window + 3600
        d0, d1, d2 = (rng.random() * 0.05 for _ in range(3))
        race(partial(deliver, committer, batch.key),
             partial(_expire_after, d0, runs[0], dev.user_id, a, window, at, expired),
             partial(_expire_after, d1, runs[1], dev.user_id, a, window, at, expired),
             partial(_collect_after, d2, gc_rt, dev.user_id, at + LATER))
        body = h.batch(dev, batch.batch_id)
        assert body["status"] == FINISHED
        statuses = [e["status"] for e in body["entries"]]
        outcomes[statuses[0]] += 1
        outcomes[f"edit {statuses[1]}"] += 1
        # the edit's pack is new, the collector's clock far ahead: it may
        # doom that pack first (then the edit is rejected, the head stays)
        edited = statuses[1] == "accepted"
        expected = {a: {chunk_id(newer if edited else new): newer if edited else new}}
        if statuses[0] == "accepted":
            expected[items[0].file_id] = {chunk_id(old): old}
        else:
            assert h.head(dev, items[0].file_id) is None
        heads_readable(h, dev, expected)
        collector.collect_user(gc_rt, dev.user_id, at + LATER, core.Tally())  # to the end
        kept = [r for f in expected for r in h.rt.retention.revisions(dev.user_id, f)
                if not r.expired]
        assert h.rt.usage.total(dev.user_id) == (sum(r.size for r in kept), len(kept))
        # whatever the race left (a run that met the collector mid-cycle
        # expired nothing), a run afterwards expires what is due, once
        retention.expire_file(h.rt, dev.user_id, a, window, at, retention.Tally())
        collector.collect_user(gc_rt, dev.user_id, at + 2 * LATER, core.Tally())
        heads_readable(h, dev, expected)
        kept = [r for f in expected for r in h.rt.retention.revisions(dev.user_id, f)
                if not r.expired]
        assert h.rt.usage.total(dev.user_id) == (sum(r.size for r in kept), len(kept))
        assert [r.revision for r in h.rt.retention.revisions(dev.user_id, a)
                if r.expired] == ([1, 2] if edited else [1])
    assert outcomes["accepted"] + outcomes["rejected"] == ROUNDS // 2
    print(f"\nretention race over {ROUNDS // 2} rounds: entries {dict(outcomes)}; "
          f"revisions expired per run {dict(expired)}")
