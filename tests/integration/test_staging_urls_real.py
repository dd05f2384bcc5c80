"""Staging URLs against the local stack's moto in server mode, over HTTP,
as a client (or a thief holding a URL) uses them.

moto verifies no presigned signature; local.moto_patches.presigned_put_headers
makes it refuse, as S3 does, a PUT that leaves out a signed header and a
body that is not the signed checksum's. What it still cannot refuse (a
signed header sent with another value) is pinned at the end and listed in
docs/SECURITY.md."""
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


def staged(h: Harness, dev: Device) -> tuple[bytes, str, dict[str, str], str]:
    """A batch presigned with its bundle's digest: (bundle, url, headers, key)."""
    item = BatchItem(new_id(), 0)
    bundle = item.manifest + item.signature(dev)
    ticket = ticket_for(h, dev, item, bundle)
    return (bundle, ticket["bundle_url"], ticket["bundle_headers"],
            staging_key(dev.user_id, ticket["batch_id"]))


def put(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    return requests.put(url, data=body, headers=headers or {}, timeout=10).status_code


def test_a_thief_with_the_bundle_url_cannot_overwrite_the_bundle(h: Harness) -> None:
    """The attack before: PUT other bytes to the URL after the client did
    (the URL lives an hour), and S3 replaced the bundle. Now the URL is
    signed create-only: without the header the PUT is refused (403), with
    it the bundle exists (412); the first bundle stays."""
    dev = h.signup()
    bundle, url, headers, key = staged(h, dev)
    assert put(url, bundle, headers) == 200
    evil = b"E" * len(bundle)
    assert put(url, evil) == 403  # the signed If-None-Match (and digest) left out
    assert put(url, evil, headers) in (400, 412)  # not these bytes, and not again
    assert put(url, bundle, headers) == 412
    assert stored(h, key) == bundle


def test_a_thief_with_the_bundle_url_cannot_put_other_bytes_first(h: Harness) -> None:
    """Racing the client: the URL is bound to the digest the client
    declared, so only its bytes can land there (400 BadDigest)."""
    dev = h.signup()
    bundle, url, headers, key = staged(h, dev)
    evil = b"E" * len(bundle)
    assert put(url, evil, headers) == 400
    assert put(url, evil, {"If-None-Match": "*"}) == 403  # the signed digest left out
    assert stored(h, key) is None
    assert put(url, bundle, headers) == 200
    assert stored(h, key) == bundle


def test_what_the_local_stack_still_does_not_enforce(h: Harness) -> None:
    """AWS refuses this PUT (the signed checksum header carries another
    value, so the signature does not match: 403). The local moto cannot
    check a signature; it stores the bytes. What stops them in the tests is
    the commit's own checks (bundle size, each entry's device signature:
    test_device_signatures.py). If this starts failing, moto learned to
    check signatures: update docs/SECURITY.md."""
    dev = h.signup()
    bundle, url, _headers, key = staged(h, dev)
    evil = b"E" * len(bundle)
    own = {"If-None-Match": "*", "x-amz-checksum-sha256": base64.b64encode(
        hashlib.sha256(evil).digest()).decode()}
    assert put(url, evil, own) == 200
    assert stored(h, key) == evil
