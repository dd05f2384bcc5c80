"""Staging URLs against moto in server mode, over HTTP, as a client (or a
thief holding a URL) uses them: what the pinned moto enforces of the
headers signed into a presigned PUT, and what it does not (docs/SECURITY.md,
"Staging URLs"). A test here that starts failing means moto changed: update
the document."""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import requests

from chalicelib.core.ids import new_id, staging_key
from tests.harness import BatchItem, Device, Harness


def ticket_for(h: Harness, dev: Device, item: BatchItem, bundle: bytes) -> dict[str, Any]:
    r = h.post("/v1/batches", {"entries": [item.body()],
                               "bundle_sha256": hashlib.sha256(bundle).hexdigest()}, dev)
    assert r.status_code == 201, r.body
    return dict(r.json_body)


def stored(h: Harness, key: str) -> bytes | None:
    try:
        return bytes(h.rt.s3.get_object(Bucket=h.rt.settings.bucket, Key=key)["Body"].read())
    except h.rt.s3.exceptions.NoSuchKey:
        return None


def test_a_thief_with_the_bundle_url_cannot_overwrite_the_bundle(h: Harness) -> None:
    """The attack before: PUT other bytes to the same URL after the client
    did (the URL lives an hour): S3 replaced the bundle. Now the URL is
    signed with If-None-Match: *, so the thief must send it, and moto
    (as S3) answers 412 and keeps the first bundle."""
    dev = h.signup()
    item = BatchItem(new_id(), 0)
    bundle = item.manifest + item.signature(dev)
    ticket = ticket_for(h, dev, item, bundle)
    url, headers = ticket["bundle_url"], ticket["bundle_headers"]
    assert requests.put(url, data=bundle, headers=headers, timeout=10).status_code == 200
    evil = b"E" * len(bundle)
    evil_headers = {**headers, "x-amz-checksum-sha256": base64.b64encode(
        hashlib.sha256(evil).digest()).decode()}
    for attempt in (headers, evil_headers):
        assert requests.put(url, data=evil, headers=attempt, timeout=10).status_code == 412
    assert stored(h, staging_key(dev.user_id, str(ticket["batch_id"]))) == bundle


def test_what_the_pinned_moto_does_not_enforce(h: Harness) -> None:
    """AWS refuses each of these (a signed header missing or different is
    SignatureDoesNotMatch; a body that does not match the signed
    x-amz-checksum-sha256 is BadDigest). moto 5.2.5 checks no presigned
    signature at all, so each lands. What stops them in the tests is the
    commit's own checks: the bundle's size and every entry's device
    signature (test_batch_pipeline, test_device_signatures)."""
    dev = h.signup()
    item = BatchItem(new_id(), 0)
    bundle = item.manifest + item.signature(dev)
    ticket = ticket_for(h, dev, item, bundle)
    url = str(ticket["bundle_url"])
    # a PUT without the signed If-None-Match, of other bytes than the digest
    assert requests.put(url, data=b"X" * len(bundle), timeout=10).status_code == 200
    # and, with the header left out, an overwrite
    assert requests.put(url, data=b"Y" * len(bundle), timeout=10).status_code == 200
    assert stored(h, staging_key(dev.user_id, str(ticket["batch_id"]))) == b"Y" * len(bundle)
