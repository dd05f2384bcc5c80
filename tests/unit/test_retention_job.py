"""The `retention` job on moto + fakeredis through the real API, batch
pipeline and collector: superseded and deleted versions expire after the
window, answer 410 with their signed manifest still readable, free the
quota exactly once, and their chunks become garbage only when nothing
retained needs them, also against a commit that dedups against them while
it runs. Races with real threads: tests/integration/test_gc_races.py."""
from __future__ import annotations

import secrets
import time

import pytest

from chalicelib import gc as collector
from chalicelib import retention
from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import new_id
from chalicelib.core.packs import pack_key
from chalicelib.jobs import SCHEDULES, run_job
from chalicelib.settings import ConfigError, Settings
from tests.harness import BatchItem, Device, Harness, chunk_id
from tests.unit.test_batch_pipeline import verdicts
from tests.unit.test_gc_collector import LATER, commit_pack, exists, stage_pack
from tests.unit.test_pack_pipeline import post_batch, put, read_chunk

DAY = 24 * 3600
AFTER = 31 * DAY  # past the default 30-day window


def commit(h: Harness, dev: Device, file_id: str, base: int, blobs: list[bytes],
           pack: bool = True) -> str:
    """Commit a version of `file_id` on `base` naming `blobs` (in a new pack,
    or none: every blob is already stored). The pack id, or ""."""
    item = BatchItem(file_id, base, chunks=tuple(blobs))
    if pack:
        pid, batch = stage_pack(h, dev, [item], blobs)
    else:
        pid, batch = "", post_batch(h, dev, [item], [])
        put(h, batch.key, batch.bundle)
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [("accepted", base + 1)]
    return pid


def total(h: Harness, dev: Device) -> tuple[int, int]:
    return h.rt.usage.total(dev.user_id)


def revision(h: Harness, dev: Device, file_id: str, rev: int):  # type: ignore[no-untyped-def]
    return h.get(f"/v1/files/{file_id}?revision={rev}", dev)


def test_a_superseded_version_expires_after_the_window_frees_its_bytes_once_and_its_pack(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    old, new = secrets.token_bytes(3000), secrets.token_bytes(500)
    first, file_id = commit_pack(h, dev, [old])
    second = commit(h, dev, file_id, 1, [new])
    stored, versions = total(h, dev)
    r1 = h.rt.meta.get_revision(dev.user_id, file_id, 1)
    assert r1 is not None and versions == 2
    now = int(time.time())
    assert collector.collect(h.rt, now + LATER)["packs_deleted"] == 0  # a cycle: both live

    assert run_job(h.rt, {"job": "retention"}, now + 29 * DAY)["expired"] == 0
    assert revision(h, dev, file_id, 1).status_code == 200
    report = run_job(h.rt, {"job": "retention"}, now + AFTER)
    assert (report["expired"], report["bytes_freed"], report["finished"]) == (1, r1.size, 1)
    assert total(h, dev) == (stored - r1.size, 1)
    assert run_job(h.rt, {"job": "retention"}, now + AFTER + DAY)["expired"] == 0
    assert total(h, dev) == (stored - r1.size, 1)  # a second run takes nothing more off

    gone = revision(h, dev, file_id, 1)
    assert gone.status_code == 410
    body = gone.json_body
    assert (body["error"], body["revision"], body["expired_at"]) == ("expired", 1, now + AFTER)
    assert "chunks" not in body and body["manifest_range"]["length"] > 0  # the history verifies
    assert h.manifest(dev, file_id) and revision(h, dev, file_id, 2).status_code == 200
    listed = h.get(f"/v1/files/{file_id}/revisions", dev).json_body["revisions"]
    assert [(r["revision"], r.get("expired_at")) for r in listed] == [(2, None), (1, now + AFTER)]

    swept = collector.collect(h.rt, now + AFTER + LATER + DAY)
    assert swept["packs_deleted"] == 1
    assert not exists(h, pack_key(dev.user_id, first))
    assert exists(h, pack_key(dev.user_id, second))
    assert read_chunk(h, dev, file_id) == {chunk_id(new): new}


def test_revisions_before_a_delete_expire_the_tombstone_stays_and_goes_once_recreated(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    blob = secrets.token_bytes(800)
    _pid, file_id = commit_pack(h, dev, [blob])
    deleted = h.delete_file(dev, file_id, 1)
    assert deleted.status_code == 202
    h.commit(f"staging/{dev.user_id}/{deleted.json_body['upload_id']}")
    head = h.rt.meta.get_head(dev.user_id, file_id)
    assert head is not None and head.deleted and head.revision == 2
    now = int(time.time())
    assert run_job(h.rt, {"job": "retention"}, now + AFTER)["expired"] == 1
    assert revision(h, dev, file_id, 1).status_code == 410
    assert run_job(h.rt, {"job": "retention"}, now + 400 * DAY)["expired"] == 0  # the head
    # the expired revision's chunk left the index: a client re-creating the
    # file on the same id is told to send it again
    assert h.post("/v1/chunks/missing", {"chunks": [chunk_id(blob)]}, dev).json_body == {
        "missing": [chunk_id(blob)]}
    commit(h, dev, file_id, 2, [blob])
    assert run_job(h.rt, {"job": "retention"}, now + 400 * DAY)["expired"] == 1
    tomb = h.rt.meta.get_revision(dev.user_id, file_id, 2)
    assert tomb is not None and tomb.expired_at == now + 400 * DAY
    assert read_chunk(h, dev, file_id) == {chunk_id(blob): blob}


def test_a_chunk_another_file_still_names_is_kept_and_put_back_in_the_index(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    shared, other = secrets.token_bytes(1000), secrets.token_bytes(300)
    pid, a = commit_pack(h, dev, [shared])
    b = new_id()
    commit(h, dev, b, 0, [shared], pack=False)  # a copy: dedup against a's chunk
    commit(h, dev, a, 1, [other])
    now = int(time.time())
    report = run_job(h.rt, {"job": "retention"}, now + AFTER)
    assert (report["expired"], report["unindexed"]) == (1, 1)
    swept = collector.collect(h.rt, now + AFTER + LATER)
    assert swept["packs_deleted"] == 0 and swept["rescued"] >= 1
    assert exists(h, pack_key(dev.user_id, pid))
    assert read_chunk(h, dev, b) == {chunk_id(shared): shared}
    assert h.rt.meta.known_chunks(dev.user_id, [chunk_id(shared)]) == {chunk_id(shared)}


def test_a_commit_naming_a_chunk_the_index_forgot_but_a_pack_still_holds_is_accepted(
        fast: Harness) -> None:
    """The retention job drops a chunk from the index that another file's
    head still names (found again only by the collector's next full cycle):
    a commit naming it meanwhile (a device's stale record of known chunks,
    an edit's ranges of its base) finds it located in a stored pack."""
    h, dev = fast, fast.signup()
    shared, other = secrets.token_bytes(1000), secrets.token_bytes(300)
    _pid, a = commit_pack(h, dev, [shared])
    commit(h, dev, new_id(), 0, [shared], pack=False)  # a copy names it too
    commit(h, dev, a, 1, [other])
    assert run_job(h.rt, {"job": "retention"}, int(time.time()) + AFTER)["unindexed"] == 1
    assert h.rt.meta.known_chunks(dev.user_id, [chunk_id(shared)]) == set()
    third = new_id()
    commit(h, dev, third, 0, [shared], pack=False)  # nothing sent: it is in a pack
    assert read_chunk(h, dev, third) == {chunk_id(shared): shared}


def test_a_commit_deduping_against_an_expiring_chunk_never_lands_on_deleted_data(
        fast: Harness) -> None:
    """The expiry and a whole collection run between the commit's chunk check
    (the chunk was known) and its transaction. Without the fence on known
    chunks the new head would name a deleted pack; with it the commit loses
    its fence, checks again and rejects the entry, and the client's retry
    (the chunk sent again) commits."""
    h, dev = fast, fast.signup()
    old, other = secrets.token_bytes(2000), secrets.token_bytes(200)
    pid, a = commit_pack(h, dev, [old])
    commit(h, dev, a, 1, [other])
    item = BatchItem(new_id(), 0, chunks=(old,))
    batch = post_batch(h, dev, [item], [])  # the chunk is known: nothing to send
    put(h, batch.key, batch.bundle)
    now, ran = int(time.time()), []

    def expire_and_collect(step: str) -> None:
        if step == "checked" and not ran:
            ran.append(run_job(h.rt, {"job": "retention"}, now + AFTER))
            ran.append(collector.collect(h.rt, now + AFTER + LATER))

    h.commit(batch.key, expire_and_collect)
    assert ran[0]["expired"] == 1 and ran[1]["packs_deleted"] == 1
    assert not exists(h, pack_key(dev.user_id, pid))
    assert verdicts(h, dev, batch) == [("rejected", "1 referenced chunk(s) were never uploaded")]
    assert h.head(dev, item.file_id) is None
    commit(h, dev, item.file_id, 0, [old])  # the client packs it again
    assert read_chunk(h, dev, item.file_id) == {chunk_id(old): old}


def test_two_runs_expire_each_revision_once(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    _pid, file_id = commit_pack(h, dev, [secrets.token_bytes(100)])
    for base in (1, 2, 3):
        commit(h, dev, file_id, base, [secrets.token_bytes(100 + base)])
    stored, _ = total(h, dev)
    revs = h.rt.retention.revisions(dev.user_id, file_id)
    doomed = [r for r in revs if r.revision < 4]
    now = int(time.time()) + AFTER
    assert h.rt.retention.expire(dev.user_id, file_id, 4, doomed, now)
    assert not h.rt.retention.expire(dev.user_id, file_id, 4, doomed, now)  # all or nothing
    assert not h.rt.retention.expire(dev.user_id, file_id, 4, doomed[:1], now)
    assert total(h, dev) == (stored - sum(r.size for r in doomed), 1)
    with pytest.raises(AssertionError):  # the head is never offered
        h.rt.retention.expire(dev.user_id, file_id, 4, revs, now)


def test_the_job_stops_on_its_time_budget_and_the_next_run_goes_on(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    files = []
    for _ in range(3):
        _pid, f = commit_pack(h, dev, [secrets.token_bytes(64)])
        commit(h, dev, f, 1, [secrets.token_bytes(65)])
        files.append(f)
    now = int(time.time()) + AFTER
    ticks = iter([0.0, 0.0] + [100.0] * 100)  # the deadline, the first file, then out of time
    first = retention.expire(h.rt, now, seconds=10, clock=lambda: next(ticks))
    assert (first["expired"], first["finished"]) == (1, 0)
    rest = retention.expire(h.rt, now)
    assert (rest["expired"], rest["finished"]) == (2, 1)
    assert h.rt.retention.cursor() == ("", "")


def test_the_window_setting_and_its_schedule() -> None:
    env = {"SEALSYNC_BUCKET": "b", "SEALSYNC_TABLE": "t", "SEALSYNC_REDIS_URL": "redis://x",
           "SEALSYNC_TOKEN_SECRET": "s" * 64}
    assert Settings.from_env(env).retention_days == 30
    assert Settings.from_env({**env, "SEALSYNC_RETENTION_DAYS": "0"}).retention_days == 0
    for bad in ("-1", "30d", "1.5", "9999999"):
        with pytest.raises(ConfigError):
            Settings.from_env({**env, "SEALSYNC_RETENTION_DAYS": bad})
    assert SCHEDULES["retention"] == 24 * 3600


def test_zero_days_keeps_every_version(fast: Harness) -> None:
    from dataclasses import replace
    h, dev = fast, fast.signup()
    _pid, file_id = commit_pack(h, dev, [secrets.token_bytes(64)])
    commit(h, dev, file_id, 1, [secrets.token_bytes(65)])
    h.rt.__dict__["settings"] = replace(h.rt.settings, retention_days=0)
    assert retention.expire(h.rt, int(time.time()) + 10**6)["expired"] == 0
    assert revision(h, dev, file_id, 1).status_code == 200
    listed = h.get(f"/v1/files/{file_id}/revisions", dev).json_body["revisions"]
    assert all("expires_at" not in r and "expired_at" not in r for r in listed)


def test_no_revision_expires_while_the_collector_is_between_a_doom_and_its_deletes(
        fast: Harness) -> None:
    """The collector's scan counts on every revision that existed at the doom
    still naming its chunks: the job leaves the user for its next run, and
    the transaction itself refuses (a run that read the state just before)."""
    h, dev = fast, fast.signup()
    _pid, file_id = commit_pack(h, dev, [secrets.token_bytes(300)])
    commit(h, dev, file_id, 1, [secrets.token_bytes(200)])
    orphan = secrets.token_bytes(100)
    put(h, f"chunks/{dev.user_id}/{chunk_id(orphan)}", orphan)  # something to doom
    now = int(time.time())
    from chalicelib.core import gc as gc_core
    for _ in range(8):  # step the collector until it has doomed and stands in its scan
        collector.collect_user(h.rt, dev.user_id, now + LATER, gc_core.Tally(), budget=1)
        if h.rt.gc.state(dev.user_id)[0].phase == gc_core.SCAN:
            break
    assert h.rt.gc.state(dev.user_id)[0].phase == gc_core.SCAN
    report = retention.expire(h.rt, now + AFTER)
    assert (report["expired"], report["collecting"]) == (0, 1)
    r1 = h.rt.retention.revisions(dev.user_id, file_id)[0]
    assert not h.rt.retention.expire(dev.user_id, file_id, 2, [r1], now + AFTER)
    assert h.rt.meta.get_revision(dev.user_id, file_id, 1).chunk_ids  # type: ignore[union-attr]
    collector.collect_user(h.rt, dev.user_id, now + LATER, gc_core.Tally())  # to the end
    assert retention.expire(h.rt, now + AFTER)["expired"] == 1


def test_an_edit_sent_as_ranges_of_an_expired_base_is_refused_clearly(fast: Harness) -> None:
    """An expired revision names no chunks any more: an edit against it (a
    conflict anyway: the head never expires) is a 400 saying so, and the
    client's fallback (the full list) is then decided as a conflict."""
    from tests.unit.test_batch_ranges import ranges

    h, dev = fast, fast.signup()
    blobs = tuple(secrets.token_bytes(50 + i) for i in range(3))
    _pid, file_id = commit_pack(h, dev, list(blobs))
    commit(h, dev, file_id, 1, [secrets.token_bytes(40)])
    run_job(h.rt, {"job": "retention"}, int(time.time()) + AFTER)
    edit = BatchItem(file_id, 1, chunks=blobs, sent=ranges(blobs, [(0, 3)]))
    r = h.post("/v1/batches", {"entries": [edit.body()]}, dev)
    assert r.status_code == 400, r.body
    assert "base revision 1 expired: send the full chunk list" in r.json_body["message"]
