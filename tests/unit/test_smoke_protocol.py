"""The protocol in-process (moto + fakeredis): the fast path of every route."""
from __future__ import annotations

import secrets

from tests.harness import Harness, chunk_id


def test_upload_commit_read_delete(fast: Harness) -> None:
    dev = fast.signup()
    file_id = secrets.token_hex(16)
    chunk = b"ciphertext chunk"
    up = fast.stage(dev, file_id, 0, b"manifest", (chunk,))
    assert fast.status(dev, up.upload_id)["status"] == "pending"
    assert fast.commit(up.key).single.status == "accepted"
    st = fast.status(dev, up.upload_id)
    assert st["status"] == "accepted" and st["revision"] == 1
    head = fast.head(dev, file_id)
    assert head and head["revision"] == 1 and head["chunks"][0]["id"] == chunk_id(chunk)
    feed = fast.changes(dev)
    assert [(c["file_id"], c["revision"]) for c in feed["changes"]] == [(file_id, 1)]
    r = fast.delete_file(dev, file_id, 1)
    assert r.status_code == 202
    key = f"staging/{dev.user_id}/{r.json_body['upload_id']}"
    assert fast.commit(key).single.status == "accepted"
    head = fast.head(dev, file_id)
    assert head and head["deleted"] and head["revision"] == 2
    assert fast.changes(dev, feed["cursor"])["changes"][0]["deleted"] is True


def test_second_upload_of_known_chunk_needs_no_url(fast: Harness) -> None:
    dev = fast.signup()
    chunk = b"shared chunk"
    up = fast.stage(dev, secrets.token_hex(16), 0, b"m1", (chunk,))
    fast.commit(up.key)
    r = fast.post("/v1/uploads", {"file_id": secrets.token_hex(16), "base_revision": 0,
                                  "manifest_size": 2,
                                  "chunks": [{"id": chunk_id(chunk), "size": len(chunk)},
                                             {"id": "ab" * 32, "size": 5}]}, dev)
    assert r.status_code == 201
    assert set(r.json_body["chunk_urls"]) == {"ab" * 32}
