"""Packs against the real stack: a file of several packs round trips to a
second device through coalesced ranged GETs, a copy of it uploads no new
pack (dedup against a pack), old v1 chunk objects still read, and what the
server holds of a pack is ciphertext and sealed ranges only."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sealsync_client import pack as packfmt
from sealsync_client.chunking import Chunker
from sealsync_client.crypto import sealed_len
from sealsync_client.packing import PACK_TARGET
from sealsync_client.pipeline import chunk_spans, part_path

from tests.client_e2e.conftest import settle, tree
from tests.client_e2e.test_zero_knowledge import _aws
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


def objects(stack: StackProcess, prefix: str) -> dict[str, bytes]:
    s3, bucket = _aws(stack, "s3"), stack.state["bucket"]
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def index_items(stack: StackProcess, user: str) -> list[dict[str, Any]]:
    db = _aws(stack, "dynamodb")
    got = db.query(TableName=stack.state["table"], KeyConditionExpression="pk = :p",
                   ExpressionAttributeValues={":p": {"S": f"L#{user}"}})
    return list(got["Items"])


def test_a_multi_pack_file_round_trips_dedups_and_stays_ciphertext(
        stack: StackProcess, devices: Any) -> None:
    a, b = devices
    user = a.config.user_id
    big = os.urandom(20 * MiB)
    (a.root / "big.bin").write_bytes(big)
    for i in range(5):
        (a.root / f"mid{i}.bin").write_bytes(os.urandom(200_000 + i))
    (a.root / "small.txt").write_bytes(b"inline")
    settle(a, b)
    assert tree(b) == tree(a)
    packs = objects(stack, f"packs/{user}/")
    assert len(packs) >= 3  # 20 MiB in packs of at most 8 MiB
    assert objects(stack, f"chunks/{user}/") == {}  # no chunk went up alone
    ring = a.keys.root_keyring()
    blobs = 0
    for key, data in packs.items():  # each is a well-formed pack of this user
        assert len(data) <= PACK_TARGET
        index = packfmt.open_pack(ring, user, key.rsplit("/", 1)[1], data)
        blobs += len(index.blobs)
    items = index_items(stack, user)
    assert len(items) == blobs and all("pack" in it for it in items)
    # No plaintext chunk length is in the table: only sealed ranges.
    spans = chunk_spans(a.root / "big.bin", ring, Chunker(ring.chunker))
    plain = {s.size for s in spans}
    stored = {it["sk"]["S"]: int(it["len"]["N"]) for it in items}
    assert {stored[s.id] for s in spans} == {sealed_len(s.size) for s in spans}
    # (only big.bin's own items: another file's sealed length may equal one
    # of these plaintext lengths by chance, which tells nothing)
    assert not plain & {stored[s.id] for s in spans}

    # A copy, and a second version of the big file that changes 4 KiB: no
    # pack is sent again for what is stored, the edit costs one small pack.
    (a.root / "copy.bin").write_bytes(big)
    edited = bytearray(big)
    edited[10 * MiB:10 * MiB + 4096] = os.urandom(4096)
    (a.root / "big.bin").write_bytes(bytes(edited))
    settle(a, b)
    assert tree(b) == tree(a)
    after = objects(stack, f"packs/{user}/")
    new = set(after) - set(packs)
    assert len(new) == 1 and sum(len(after[k]) for k in new) <= 4 * MiB


def test_a_download_resumes_from_its_part_file_with_packs(
        stack: StackProcess, devices: Any, tmp_path: Path) -> None:
    a, b = devices
    data = os.urandom(12 * MiB)
    (a.root / "f.bin").write_bytes(data)
    settle(a)
    engine = b.engine()
    t = engine.transfer
    [change] = b.api.changes(0)["changes"]
    v = t.version(change["file_id"])
    dest = tmp_path / "out.bin"
    calls: list[Any] = []
    broken = [True]
    real = b.api.get_blob

    def failing(url: str, byte_range: Any = None, **kw: Any) -> Any:
        calls.append(byte_range)
        if len(calls) == 2 and broken:
            raise OSError("the network went away")
        return real(url, byte_range, **kw) if byte_range else real(url)

    b.api.get_blob = failing
    with pytest.raises(OSError):
        t.download(v, dest)  # 12 MiB in two packs: two ranged GETs, the second fails
    assert not dest.exists() and part_path(dest).stat().st_size > 0
    broken.clear()
    first = list(calls)
    t.download(v, dest)
    assert dest.read_bytes() == data
    assert all(r is not None for r in calls)  # pack ranges, never whole objects
    assert len(calls) - len(first) == 1  # the verified prefix is not fetched again
