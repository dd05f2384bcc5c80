"""The `gc` job on moto + fakeredis through the real API and batch pipeline:
what it deletes, what it keeps, that a second run has no effect, and the
fence against a commit that dedups against what is being collected (the
collector run inside the commit's "checked" step, between its chunk check
and its transaction). Races with real threads: tests/integration/test_gc_races.py."""
from __future__ import annotations

import secrets
import time
from typing import Any

from chalicelib import gc as collector
from chalicelib.core import gc as core
from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import chunk_key, new_id
from chalicelib.core.packs import pack_key
from chalicelib.jobs import run_job
from tests.harness import BatchItem, Harness, chunk_id
from tests.unit.test_batch_pipeline import verdicts
from tests.unit.test_pack_pipeline import make_pack, post_batch, put, read_chunk

LATER = 3 * 24 * 3600  # past the default grace period


def exists(h: Harness, key: str) -> bool:
    return h.rt.blobs.size(key) is not None


def stage_pack(h: Harness, dev, items: list[BatchItem], blobs: list[bytes],  # type: ignore[no-untyped-def]
               pad: int = 64) -> tuple[str, Any]:
    """PUT one pack of `blobs` and the bundle of a batch of `items` that
    declares it: staged, not committed. (pack id, the staged batch)"""
    pid, data, decl = make_pack(blobs, pad)
    batch = post_batch(h, dev, items, [decl])
    put(h, pack_key(dev.user_id, pid), data)
    put(h, batch.key, batch.bundle)
    return pid, batch


def commit_pack(h: Harness, dev, blobs: list[bytes]) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    item = BatchItem(new_id(), 0, chunks=tuple(blobs))
    pid, batch = stage_pack(h, dev, [item], blobs)
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [("accepted", 1)]
    return pid, item.file_id


def test_unreferenced_chunks_and_packs_go_after_the_grace_period_and_only_they(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    c1, c2 = secrets.token_bytes(300), secrets.token_bytes(500)
    live, file_id = commit_pack(h, dev, [c1, c2])
    _dead, dead_data, _ = make_pack([secrets.token_bytes(400)])
    put(h, pack_key(dev.user_id, _dead), dead_data)  # a killed client's pack
    orphan = secrets.token_bytes(200)
    put(h, chunk_key(dev.user_id, chunk_id(orphan)), orphan)  # an abandoned v1 chunk
    now = int(time.time())
    assert collector.collect(h.rt, now)["packs_deleted"] == 0  # too young
    report = run_job(h.rt, {"job": "gc"}, now + LATER)
    assert (report["packs_deleted"], report["chunks_deleted"]) == (1, 1)
    assert report["bytes_deleted"] == len(dead_data) + len(orphan)
    assert not exists(h, pack_key(dev.user_id, _dead))
    assert not exists(h, chunk_key(dev.user_id, chunk_id(orphan)))
    assert exists(h, pack_key(dev.user_id, live))
    assert read_chunk(h, dev, file_id) == {chunk_id(c1): c1, chunk_id(c2): c2}
    again = collector.collect(h.rt, now + LATER + 60)  # idempotent: nothing more
    assert (again["packs_deleted"], again["chunks_deleted"], again["doomed"]) == (0, 0, 0)


def test_a_commit_racing_the_doom_loses_its_fence_and_rejects_then_reupload_works(
        fast: Harness) -> None:
    """The client re-declares a pack it PUT long ago; the collector dooms and
    deletes it between the commit's chunk check and its transaction. The
    transaction fails on the generation, the check runs again, the entry is
    rejected; a fresh pack then commits and reads back."""
    h, dev = fast, fast.signup()
    blob = secrets.token_bytes(700)
    item = BatchItem(new_id(), 0, chunks=(blob,))
    pid, batch = stage_pack(h, dev, [item], [blob])
    ran = []

    def collect_now(step: str) -> None:
        if step == "checked" and not ran:
            ran.append(collector.collect(h.rt, int(time.time()) + LATER))

    h.commit(batch.key, collect_now)
    assert ran and ran[0]["packs_deleted"] == 1
    assert verdicts(h, dev, batch) == [
        ("rejected", "1 referenced chunk(s) were never uploaded")]
    assert h.head(dev, item.file_id) is None
    assert h.post("/v1/chunks/missing", {"chunks": [chunk_id(blob)]}, dev).json_body == {
        "missing": [chunk_id(blob)]}
    _pid, file_id = commit_pack(h, dev, [blob])  # the client packs it again
    assert read_chunk(h, dev, file_id) == {chunk_id(blob): blob}


def test_a_commit_that_lands_before_the_doom_is_rescued_by_the_scan(
        fast: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The collector lists the pack while its chunks are still unknown, the
    commit lands, then the doom: the scan after the doom finds the revision
    and rescues the pack."""
    h, dev = fast, fast.signup()
    blob = secrets.token_bytes(900)
    item = BatchItem(new_id(), 0, chunks=(blob,))
    pid, batch = stage_pack(h, dev, [item], [blob])
    real_doom, held = h.rt.gc.doom, []
    monkeypatch.setattr(h.rt.gc, "doom", lambda *a: held.append(a) or a[2] + 1)

    def list_then_hold(step: str) -> None:
        if step == "checked" and not held:
            collector.collect(h.rt, int(time.time()) + LATER, budget=4)

    h.commit(batch.key, list_then_hold)
    assert verdicts(h, dev, batch) == [("accepted", 1)]
    assert held and pid in held[0][1].doomed_packs
    real_doom(*held[0])  # the doom lands after the commit
    monkeypatch.setattr(h.rt.gc, "doom", real_doom)
    report = collector.collect(h.rt, int(time.time()) + LATER)
    assert report["packs_deleted"] == 0 and report["rescued"] >= 1
    assert read_chunk(h, dev, item.file_id) == {chunk_id(blob): blob}


def test_a_mostly_dead_pack_is_repacked_then_collected_once_read_urls_expired(
        fast: Harness) -> None:
    """One entry commits, the other (base ahead of the head) is rejected: its
    big blob lies dead in the same pack. The job copies the live blob into a
    server-written pack (no key: the blob is sealed to its chunk id, not its
    pack), moves its location, and deletes the old pack a run later."""
    h, dev = fast, fast.signup()
    live, dead = secrets.token_bytes(300), secrets.token_bytes(6000)
    items = [BatchItem(new_id(), 0, chunks=(live,)), BatchItem(new_id(), 3, chunks=(dead,))]
    pid, batch = stage_pack(h, dev, items, [live, dead], pad=0)
    h.commit(batch.key)
    assert [v[0] for v in verdicts(h, dev, batch)] == ["accepted", "rejected"]
    at = int(time.time()) + LATER
    first = collector.collect(h.rt, at)
    assert (first["packs_repacked"], first["blobs_moved"], first["packs_deleted"]) == (1, 1, 0)
    body = h.head(dev, items[0].file_id)
    assert body is not None and body["chunks"][0]["pack"] != pid  # moved
    assert body["chunks"][0]["offset"] == 5  # after the server pack's header
    assert read_chunk(h, dev, items[0].file_id) == {chunk_id(live): live}
    assert exists(h, pack_key(dev.user_id, pid))  # a reader may still hold its URL
    assert collector.collect(h.rt, at + 60)["packs_deleted"] == 0
    later = collector.collect(h.rt, at + max(h.rt.settings.upload_ttl_s, core.CYCLE_EVERY_S) + 60)
    assert later["packs_deleted"] == 1 and later["locations_deleted"] == 1
    assert not exists(h, pack_key(dev.user_id, pid))
    assert read_chunk(h, dev, items[0].file_id) == {chunk_id(live): live}


def test_a_big_account_finishes_over_several_bounded_runs(fast: Harness, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Pages of 4 keys and 3 steps a run: two users' 10 orphans each go over
    several runs, each run resuming where the last stopped; live data stays."""
    monkeypatch.setattr(collector, "PAGE", 4)
    h = fast
    devs = [h.signup(), h.signup()]
    kept = {}
    for dev in devs:
        blob = secrets.token_bytes(100)
        kept[dev.user_id] = (dev, *commit_pack(h, dev, [blob]), blob)
        for _ in range(10):
            orphan = secrets.token_bytes(50)
            put(h, chunk_key(dev.user_id, chunk_id(orphan)), orphan)
    at, runs, deleted = int(time.time()) + LATER, 0, 0
    while deleted < 20:
        report = collector.collect(h.rt, at, budget=3)
        assert report["steps"] <= 3
        deleted += report["chunks_deleted"]
        runs += 1
        assert runs < 60, "the collection never finished"
    assert runs > 4
    for dev, _pid, file_id, blob in kept.values():
        assert read_chunk(h, dev, file_id) == {chunk_id(blob): blob}
        listed, _ = h.rt.blobs.list_page(f"chunks/{dev.user_id}/", "", 100)
        assert listed == []


def test_a_run_stops_at_its_time_budget(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    orphan = secrets.token_bytes(50)
    put(h, chunk_key(dev.user_id, chunk_id(orphan)), orphan)
    ticks = iter(range(1000))
    report = collector.collect(h.rt, int(time.time()) + LATER, seconds=2.5,
                               clock=lambda: float(next(ticks)))
    assert report["chunks_deleted"] == 0 and report["users"] == 1  # stopped after a step
    assert collector.collect(h.rt, int(time.time()) + LATER)["chunks_deleted"] == 1
