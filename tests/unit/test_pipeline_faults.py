"""Crashes at step boundaries of the (batch) pipeline, through a v1
upload's batch of one: a retried event finishes the upload, and what the
first attempt put in place is what gets committed. (Batches of many:
tests/unit/test_batch_pipeline.py and tests/integration/test_batch_races.py.)"""
from __future__ import annotations

import secrets

import pytest

from chalicelib.core.ids import bundle_key
from tests.harness import Harness


class Crash(Exception):
    pass


def crash_at(step: str):  # type: ignore[no-untyped-def]
    def fault(now: str) -> None:
        if now == step:
            raise Crash(step)
    return fault


@pytest.mark.parametrize("step", ["locked", "checked", "decided", "copied", "committed",
                                  "cleaned"])
def test_crash_then_retry_commits_exactly_once(fast: Harness, step: str) -> None:
    dev = fast.signup()
    file_id = secrets.token_hex(16)
    up = fast.stage(dev, file_id, 0, b"first manifest", (b"chunk",))
    with pytest.raises(Crash):
        fast.commit(up.key, crash_at(step))
    retried = fast.commit(up.key)
    assert fast.status(dev, up.upload_id)["status"] == "accepted"
    assert retried.single.status == "accepted"
    assert [c["revision"] for c in fast.changes(dev)["changes"]] == [1]
    head = fast.head(dev, file_id)
    assert head is not None and head["revision"] == 1
    assert fast.rt.blobs.size(up.key) is None  # staging cleaned up in the end


@pytest.mark.parametrize("replayed", [b"original bytes!", b"replayed bytes!"])
def test_replayed_put_after_copy_does_not_replace_the_manifest(fast: Harness,
                                                               replayed: bytes) -> None:
    """The same PUT again commits the first copy; other bytes of the same
    length are not what the device signed, so nothing is committed."""
    dev = fast.signup()
    file_id = secrets.token_hex(16)
    up = fast.stage(dev, file_id, 0, b"original bytes!", ())
    with pytest.raises(Crash):
        fast.commit(up.key, crash_at("copied"))
    s3, bucket = fast.rt.s3, fast.rt.settings.bucket
    s3.put_object(Bucket=bucket, Key=up.key, Body=replayed)  # same length
    same = replayed == b"original bytes!"
    assert fast.commit(up.key).single.status == ("accepted" if same else "rejected")
    key = bundle_key(dev.user_id, up.upload_id)  # the first copy, never replaced
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"original bytes!"
    assert (fast.head(dev, file_id) is not None) == same
