"""The v1 routes are thin wrappers over a batch of one (chalicelib/single.py,
docs/DESIGN.md "One protocol"): what they answer is the batch's, in the v1
shape, and the v1 wire (the manifest alone in staging, the signature in the
body) still holds."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import new_id
from tests.harness import BatchItem, Harness


def test_a_v1_upload_is_a_batch_of_one_on_both_routes(fast: Harness) -> None:
    dev = fast.signup()
    file_id = new_id()
    up = fast.stage(dev, file_id, 0, b"a manifest")
    assert fast.status(dev, up.upload_id) == {"upload_id": up.upload_id, "file_id": file_id,
                                              "status": "pending", "base_revision": 0}
    assert fast.commit(up.key).single.status == "accepted"
    as_batch = fast.batch(dev, up.upload_id)
    assert as_batch == {"batch_id": up.upload_id, "status": FINISHED, "entries": [
        {"file_id": file_id, "status": "accepted", "revision": 1}]}
    assert fast.status(dev, up.upload_id) == {"upload_id": up.upload_id, "file_id": file_id,
                                              "status": "accepted", "base_revision": 0,
                                              "revision": 1}
    head = fast.head(dev, file_id)
    assert head and head["revision"] == 1
    assert fast.manifest(dev, file_id) == b"a manifest"


def test_a_batch_of_more_than_one_is_no_upload(fast: Harness) -> None:
    dev = fast.signup()
    batch = fast.stage_batch(dev, [BatchItem(new_id(), 0), BatchItem(new_id(), 0)])
    r = fast.get(f"/v1/uploads/{batch.batch_id}", dev)
    assert r.status_code == 404 and r.json_body["message"] == "no such upload"
    one = fast.stage_batch(dev, [BatchItem(new_id(), 0)])  # a batch of one is one
    assert fast.status(dev, one.batch_id)["status"] == "pending"


def test_the_v1_staging_object_is_the_manifest_alone(fast: Harness,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 client PUTs exactly manifest_size bytes (the URL is signed for
    that length): a bundle with a signature trailer, as POST /v1/batches
    wants, is the wrong size here."""
    dev = fast.signup()
    item = BatchItem(new_id(), 0, b"the manifest")
    signed: dict[str, int] = {}
    real = fast.rt.blobs.presign_put

    def presign_put(key: str, size: int, *args: Any, **kw: Any) -> str:
        signed[key] = size
        return real(key, size, *args, **kw)

    monkeypatch.setattr(fast.rt.blobs, "presign_put", presign_put)
    r = fast.post("/v1/uploads", {**item.body(), "signature": item.signature(dev).hex()}, dev)
    assert r.status_code == 201, r.body
    assert set(r.json_body) == {"upload_id", "manifest_url", "manifest_headers", "chunk_urls",
                                "chunk_headers", "expires_at"}
    assert signed == {f"staging/{dev.user_id}/{r.json_body['upload_id']}": 12}
    key = f"staging/{dev.user_id}/{r.json_body['upload_id']}"
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=key,
                          Body=item.manifest + item.signature(dev))
    out = fast.commit(key)
    assert out.single.status == "rejected"
    assert str(out.single.reason).startswith("bundle is 76 bytes but the entries declare 12")
    assert fast.head(dev, item.file_id) is None


def test_a_v1_delete_is_a_tombstone_batch_of_one(fast: Harness) -> None:
    dev = fast.signup()
    file_id = new_id()
    fast.commit(fast.stage(dev, file_id, 0).key)
    r = fast.delete_file(dev, file_id, 1)
    assert r.status_code == 202 and r.json_body["status"] == "pending"
    upload_id = r.json_body["upload_id"]
    assert fast.commit(f"staging/{dev.user_id}/{upload_id}").single.status == "accepted"
    assert fast.batch(dev, upload_id)["entries"] == [
        {"file_id": file_id, "status": "accepted", "revision": 2}]
    head = fast.head(dev, file_id)
    assert head and head["revision"] == 2 and head["deleted"]
    assert [c["deleted"] for c in fast.changes(dev)["changes"]] == [False, True]
