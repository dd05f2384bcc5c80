"""The sweeper ends every upload (invariant 4), with time injected: stragglers
whose event was lost are finished, those whose manifest never came are
rejected, orphaned staging objects go, and anything recent is left alone."""
from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib import api
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id, staging_key
from chalicelib.sweeper import sweep
from tests.harness import Harness

HOUR = 3600


@pytest.fixture
def backdate(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """Make the API stamp new upload records `clock.ago` seconds in the past
    (only the API's clock: tokens, S3 and the store keep real time)."""
    clock = SimpleNamespace(ago=0)
    monkeypatch.setattr(api, "time", SimpleNamespace(time=lambda: time.time() - clock.ago))
    yield clock


def later(hours: float = 2) -> float:
    """A `now` far enough ahead that everything existing is a straggler."""
    return time.time() + hours * HOUR


def test_a_lost_event_is_finished(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0, b"manifest", (b"chunk",))  # event never delivered
    report = sweep(fast.rt, now=later())
    assert report.finished == [up.upload_id] and report.errors == 0
    st = fast.status(dev, up.upload_id)
    assert (st["status"], st["revision"]) == ("accepted", 1)
    head = fast.head(dev, up.file_id)
    assert head and head["revision"] == 1
    assert fast.rt.blobs.size(up.key) is None


def test_a_lost_delete_is_finished(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    fast.commit(up.key)
    r = fast.delete_file(dev, up.file_id, 1)
    assert r.status_code == 202
    report = sweep(fast.rt, now=later())
    assert report.finished == [r.json_body["upload_id"]]
    head = fast.head(dev, up.file_id)
    assert head and head["deleted"] and head["revision"] == 2


def test_a_straggler_with_a_bad_manifest_is_rejected_through_the_pipeline(
        fast: Harness) -> None:
    dev = fast.signup()
    r = fast.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                  "manifest_size": 10}, dev)
    upload_id = r.json_body["upload_id"]
    key = staging_key(dev.user_id, upload_id)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=key, Body=b"too long by far")
    assert sweep(fast.rt, now=later()).finished == [upload_id]
    st = fast.status(dev, upload_id)
    assert st["status"] == "rejected"
    assert st["reason"] == "bundle is 15 bytes but the entries declare 10"


def test_a_manifest_that_never_arrived_is_rejected_with_a_reason(fast: Harness) -> None:
    dev = fast.signup()
    file_id = new_id()
    r = fast.post("/v1/uploads", {"file_id": file_id, "base_revision": 0,
                                  "manifest_size": 8}, dev)
    upload_id = r.json_body["upload_id"]
    report = sweep(fast.rt, now=later())
    assert report.expired == [upload_id] and report.finished == []
    st = fast.status(dev, upload_id)
    assert st["status"] == "rejected"
    assert st["reason"] == "upload expired before its manifest arrived"
    assert fast.head(dev, file_id) is None
    # A manifest that turns up after all is now an orphan: never committed.
    key = staging_key(dev.user_id, upload_id)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=key, Body=b"manifest")
    assert fast.commit(key).single.status == "rejected"
    assert fast.head(dev, file_id) is None


def test_orphan_staging_objects_are_deleted(fast: Harness) -> None:
    dev = fast.signup()
    s3, bucket = fast.rt.s3, fast.rt.settings.bucket
    done = fast.stage(dev, new_id(), 0, b"manifest")
    fast.commit(done.key)
    s3.put_object(Bucket=bucket, Key=done.key, Body=b"replayed")  # record is terminal
    no_record = staging_key(dev.user_id, new_id())
    s3.put_object(Bucket=bucket, Key=no_record, Body=b"nobody asked")
    junk = ["staging/not-an-id/x", f"staging/{dev.user_id}/{new_id()}/extra"]
    for key in junk:
        s3.put_object(Bucket=bucket, Key=key, Body=b"?")
    keep = [k["Key"] for k in s3.list_objects_v2(Bucket=bucket)["Contents"]
            if not k["Key"].startswith("staging/")]
    head = fast.head(dev, done.file_id)

    report = sweep(fast.rt, now=later())
    assert sorted(report.orphans_deleted) == sorted([done.key, no_record, *junk])
    assert report.finished == report.expired == [] and report.errors == 0
    left = [k["Key"] for k in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(left) == sorted(keep)  # chunks and manifests untouched
    assert _same_head(fast.head(dev, done.file_id), head)
    assert fast.status(dev, done.upload_id)["status"] == "accepted"


def _same_head(a: dict[str, object] | None, b: dict[str, object] | None) -> bool:
    def strip(h: dict[str, object] | None) -> dict[str, object] | None:
        return None if h is None else {k: v for k, v in h.items()
                                       if k not in ("manifest_url", "chunks")}
    return strip(a) == strip(b)


def test_recent_uploads_and_objects_are_left_alone(fast: Harness,
                                                   backdate: SimpleNamespace) -> None:
    dev = fast.signup()
    backdate.ago = 2 * HOUR
    old = fast.stage(dev, new_id(), 0)
    backdate.ago = 0
    recent = fast.stage(dev, new_id(), 0)  # manifest in, event not yet delivered
    waiting = fast.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                        "manifest_size": 8}, dev).json_body["upload_id"]
    stray = staging_key(dev.user_id, new_id())  # no record, but only just written
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=stray, Body=b"x")

    report = sweep(fast.rt, now=time.time() + 60)
    assert report.finished == [old.upload_id]
    assert report.expired == [] and report.orphans_deleted == [] and report.errors == 0
    assert fast.status(dev, recent.upload_id)["status"] == "pending"
    assert fast.status(dev, waiting)["status"] == "pending"
    assert fast.rt.blobs.size(recent.key) is not None and fast.rt.blobs.size(stray) == 1
    # ... and the recent one still commits normally.
    assert fast.commit(recent.key).single.status == "accepted"


def test_nothing_to_do_now_means_nothing_done(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    report = sweep(fast.rt)  # real time: the upload is seconds old
    assert (report.finished, report.expired, report.orphans_deleted, report.errors) == (
        [], [], [], 0)
    assert fast.status(dev, up.upload_id)["status"] == "pending"


def test_a_second_sweep_finds_nothing(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    fast.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0, "manifest_size": 8},
              dev)
    first = sweep(fast.rt, now=later())
    assert first.finished == [up.upload_id] and len(first.expired) == 1
    again = sweep(fast.rt, now=later(3))
    assert (again.finished, again.expired, again.orphans_deleted, again.errors) == (
        [], [], [], 0)
    assert [c["revision"] for c in fast.changes(dev)["changes"]] == [1]


def test_one_stuck_upload_does_not_stop_the_sweep(fast: Harness) -> None:
    dev = fast.signup()
    stuck = fast.stage(dev, new_id(), 0)
    fine = fast.stage(dev, new_id(), 0)
    real_copy = fast.rt.blobs.copy

    def copy(source: str, dest: str, **kw: Any) -> None:  # S3 failing for this one bundle
        if source == stuck.key:
            raise Unavailable("S3 is failing")
        real_copy(source, dest, **kw)

    fast.rt.blobs.copy = copy  # type: ignore[method-assign]
    report = sweep(fast.rt, now=later())
    assert report.finished == [fine.upload_id] and report.errors == 1
    assert fast.status(dev, stuck.upload_id)["status"] == "pending"
    assert fast.rt.blobs.size(stuck.key) is not None  # kept: it is still pending
    fast.rt.blobs.copy = real_copy  # type: ignore[method-assign]
    assert sweep(fast.rt, now=later()).finished == [stuck.upload_id]
    assert fast.status(dev, stuck.upload_id)["status"] == "accepted"
