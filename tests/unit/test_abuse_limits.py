"""Issue 15, "anyone can store unlimited data" and "staging URLs are not
create-only, not bound to a checksum": each attack as a test that must now
fail to achieve anything.

  - an account at its quota presigns nothing more (413 over_quota), and a
    batch that would pass it is refused; what counts is the bytes the
    commit metered, never a declaration; deletes always pass
  - every staging PUT URL is create-only and, when the client declares the
    digest, signed with it (what AWS then enforces: docs/SECURITY.md)
  - a staging object replaced between the commit's check and its copy into
    place is never committed (the copy is tied to the checked ETag)
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.batch_commit import StagingReplaced
from chalicelib.config import ConfigError
from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import bundle_key, new_id
from chalicelib.core.metering import Prices
from tests.harness import BatchItem, Device, Harness, settings
from tests.openapi_support import CheckedHTTP, resolve, validator
from tests.unit.bad_input import expect
from tests.unit.test_openapi import checked  # noqa: F401  (the fixture)

QUOTA = 4096


def tiny_quota(h: Harness, quota: int = QUOTA) -> None:
    h.rt.settings = replace(h.rt.settings, prices=Prices(quota_bytes=quota))


def stored(h: Harness, dev: Device) -> int:
    return h.rt.usage.total(dev.user_id)[0]


def commit_batch(h: Harness, dev: Device, items: list[BatchItem]) -> list[str]:
    batch = h.stage_batch(dev, items)
    assert h.commit(batch.key).status == FINISHED
    return [e["status"] for e in h.batch(dev, batch.batch_id)["entries"]]


def batch_body(items: list[BatchItem]) -> dict[str, object]:
    return {"entries": [i.body() for i in items]}


# -- the quota --------------------------------------------------------------------------
def test_an_account_at_its_quota_presigns_no_more_uploads(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    tiny_quota(h)
    big = BatchItem(new_id(), 0, manifest=b"m" * 96, chunks=(b"x" * (QUOTA - 96),))
    assert commit_batch(h, dev, [big]) == ["accepted"]
    assert stored(h, dev) == QUOTA  # metered at commit, from what arrived
    more = [BatchItem(new_id(), 0, chunks=(b"one more byte",))]
    expect(h.post("/v1/batches", batch_body(more), dev), 413, "over_quota",
           "storage quota is used up", "deletes still work")
    single = {**more[0].body(), "signature": "00" * 64}
    expect(h.post("/v1/uploads", single, dev), 413, "over_quota", "quota is used up")
    # another account is not affected
    other = h.signup()
    assert h.post("/v1/batches", batch_body(more), other).status_code == 201


def test_a_batch_that_would_pass_the_quota_is_refused_one_that_fits_is_not(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    tiny_quota(h)
    assert commit_batch(h, dev, [BatchItem(new_id(), 0, chunks=(b"a" * 1000,))]) == \
        ["accepted"]
    used = stored(h, dev)
    room = QUOTA - used
    too_big = [BatchItem(new_id(), 0, manifest=b"m" * 10, chunks=(b"b" * (room - 9),))]
    expect(h.post("/v1/batches", batch_body(too_big), dev), 413, "over_quota",
           "would pass the account's storage quota")
    fits = [BatchItem(new_id(), 0, manifest=b"m" * 10, chunks=(b"b" * (room - 10),))]
    assert commit_batch(h, dev, fits) == ["accepted"]
    assert stored(h, dev) == QUOTA


def test_only_what_the_commit_metered_counts_never_a_declaration(fast: Harness) -> None:
    """Presigned and never committed (or rejected at commit) adds nothing:
    the quota is charged from verified sizes, so a declaration can only
    make its own batch refuse earlier."""
    h, dev = fast, fast.signup()
    tiny_quota(h)
    declared = [BatchItem(new_id(), 0, chunks=(b"c" * 3000,))]
    h.stage_batch(dev, declared, upload_chunks=False, put=False)  # never arrives
    lied = h.stage_batch(dev, [BatchItem(new_id(), 0, chunks=(b"d" * 3000,))],
                         upload_chunks=False)  # its chunk never arrives: rejected
    assert h.commit(lied.key).status == FINISHED
    assert stored(h, dev) == 0
    assert commit_batch(h, dev, [BatchItem(new_id(), 0, chunks=(b"e" * 3000,))]) == \
        ["accepted"]


def test_deletes_always_pass_even_over_the_quota(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    files = [BatchItem(new_id(), 0, chunks=(bytes([i]) * 2000,)) for i in range(3)]
    assert commit_batch(h, dev, files) == ["accepted"] * 3
    tiny_quota(h)  # the operator lowered the plan: the account is over it now
    assert stored(h, dev) > QUOTA
    # the client's deletes: signed tombstone manifests, no chunks, of existing files
    deletes = [BatchItem(f.file_id, 1, manifest=b"t" * 300) for f in files[:2]]
    assert commit_batch(h, dev, deletes) == ["accepted"] * 2
    # the server's own (v1) delete too
    r = h.delete_file(dev, files[2].file_id, 1)
    assert r.status_code in (200, 202), r.body
    # but a chunkless "delete" of a file that does not exist, or a big
    # manifest dressed as one, is an upload like any other
    for fake in (BatchItem(new_id(), 0, manifest=b"t" * 300),
                 BatchItem(files[0].file_id, 2, manifest=b"t" * (64 * 1024 + 1))):
        expect(h.post("/v1/batches", batch_body([fake]), dev), 413, "over_quota")
    # a batch mixing a delete and an upload is refused as a whole (the
    # client then sends its deletes alone: tests/client_e2e/test_quota.py)
    mixed = [BatchItem(files[1].file_id, 2, manifest=b"t" * 300),
             BatchItem(new_id(), 0, chunks=(b"new",))]
    expect(h.post("/v1/batches", batch_body(mixed), dev), 413, "over_quota")


def test_the_quota_is_an_operator_setting() -> None:
    assert settings().prices.quota_bytes == 50 * 1024**3
    assert settings(SEALSYNC_QUOTA_BYTES="1000").prices.quota_bytes == 1000
    assert settings(SEALSYNC_QUOTA_BYTES="0").prices.quota_bytes == 0  # no quota
    assert settings(SEALSYNC_PRICES='{"quota_bytes": 77}').prices.quota_bytes == 77
    both = settings(SEALSYNC_PRICES='{"quota_bytes": 77}', SEALSYNC_QUOTA_BYTES="5")
    assert both.prices.quota_bytes == 5
    for bad in ("-1", "1e9", "lots", "1" * 19):
        with pytest.raises(ConfigError, match="SEALSYNC_QUOTA_BYTES"):
            settings(SEALSYNC_QUOTA_BYTES=bad)


def test_no_quota_means_no_read(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    tiny_quota(h, 0)
    assert commit_batch(h, dev, [BatchItem(new_id(), 0, chunks=(b"z" * 9000,))]) == \
        ["accepted"]
    assert h.post("/v1/batches", batch_body([BatchItem(new_id(), 0, chunks=(b"y",))]),
                  dev).status_code == 201


# -- staging URLs -----------------------------------------------------------------------
def signed_headers(url: str) -> set[str]:
    return set(parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";"))


def test_every_staging_url_is_create_only_and_bound_to_the_declared_digest(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    item = BatchItem(new_id(), 0, chunks=(b"chunk",))
    bundle = item.manifest + item.signature(dev)
    digest = hashlib.sha256(bundle).hexdigest()
    r = h.post("/v1/batches", {**batch_body([item]), "bundle_sha256": digest}, dev)
    assert r.status_code == 201, r.body
    ticket = r.json_body
    assert {"if-none-match", "x-amz-checksum-sha256", "content-length"} <= \
        signed_headers(ticket["bundle_url"])
    assert ticket["bundle_headers"] == {
        "If-None-Match": "*",
        "x-amz-checksum-sha256": base64.b64encode(bytes.fromhex(digest)).decode()}
    # without a digest: still create-only
    r = h.post("/v1/batches", batch_body([BatchItem(new_id(), 0)]), dev)
    assert "if-none-match" in signed_headers(r.json_body["bundle_url"])
    assert r.json_body["bundle_headers"] == {"If-None-Match": "*"}
    # the v1 manifest URL likewise
    single = {**BatchItem(new_id(), 0).body(), "manifest_sha256": digest}
    r = h.post("/v1/uploads", single, dev)
    assert {"if-none-match", "x-amz-checksum-sha256"} <= signed_headers(
        r.json_body["manifest_url"])
    assert r.json_body["manifest_headers"]["If-None-Match"] == "*"


# -- check-then-copy ----------------------------------------------------------------------
def test_a_bundle_replaced_after_its_check_is_never_committed(fast: Harness) -> None:
    """The attack: the commit checks the bundle (size, every signature), then
    someone with write access to staging swaps it before the copy into
    place. Before: the swapped bytes became the file's head. Now the copy
    is tied to the checked ETag: nothing is copied, the event is retried,
    and the retry checks the swapped bytes (and rejects them)."""
    h, dev = fast, fast.signup()
    item = BatchItem(new_id(), 0)
    batch = h.stage_batch(dev, [item])
    evil = b"E" * len(item.manifest) + item.signature(dev)  # same size, other bytes

    def swap(step: str) -> None:
        if step == "checked":
            h.rt.blobs.put(batch.key, evil)

    with pytest.raises(StagingReplaced):
        h.commit(batch.key, swap)
    assert h.rt.blobs.size(bundle_key(dev.user_id, batch.batch_id)) is None  # not copied
    assert h.head(dev, item.file_id) is None
    assert h.commit(batch.key).status == FINISHED  # the event's retry
    [entry] = h.batch(dev, batch.batch_id)["entries"]
    assert entry["status"] == "rejected" and "signature" in entry["reason"]
    assert h.head(dev, item.file_id) is None


def test_a_v1_manifest_replaced_after_its_check_is_never_committed(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    file_id = new_id()
    manifest = b"M" * 64
    pending = h.stage(dev, file_id, 0, manifest)

    def swap(step: str) -> None:
        if step == "checked":
            h.rt.blobs.put(pending.key, b"E" * 64)

    with pytest.raises(StagingReplaced):
        h.commit(pending.key, swap)
    assert h.head(dev, file_id) is None
    assert h.commit(pending.key).status == "rejected"  # the retry sees the swap
    assert h.head(dev, file_id) is None


def test_an_unchanged_bundle_commits_as_before(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    item = BatchItem(new_id(), 0, chunks=(b"fine",))
    assert commit_batch(h, dev, [item]) == ["accepted"]
    assert h.manifest(dev, item.file_id) == item.manifest


# -- the document ---------------------------------------------------------------------------
def test_quota_answers_and_bound_urls_are_as_documented(
        checked: tuple[Harness, CheckedHTTP]) -> None:  # noqa: F811
    """The 413 over_quota and the tickets' put headers, validated against
    chalicelib/openapi.json (CheckedHTTP), requests against their schema."""
    h, http = checked
    dev = h.signup()
    item = BatchItem(new_id(), 0, chunks=(b"q" * 100,))
    body = {**batch_body([item]), "bundle_sha256": "ab" * 32}
    assert not list(validator(resolve({"$ref": "#/components/schemas/CreateBatch"}))
                    .iter_errors(body))
    assert h.post("/v1/batches", body, dev).status_code == 201
    single = {**BatchItem(new_id(), 0).body(), "manifest_sha256": "cd" * 32}
    assert h.post("/v1/uploads", single, dev).status_code == 201
    tiny_quota(h, 10)
    expect(h.post("/v1/batches", body, dev), 413, "over_quota")
    expect(h.post("/v1/uploads", single, dev), 413, "over_quota")
    assert {("/v1/batches", "post", "413"), ("/v1/uploads", "post", "413")} <= http.seen
