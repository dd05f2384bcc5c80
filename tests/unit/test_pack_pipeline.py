"""Packs through the real API and batch pipeline on moto + fakeredis: a
pack that never arrived, a size lie, another user's pack id, dedup against
a pack, mixed v1 chunks and packs, reads, bad input."""
from __future__ import annotations

import json
import secrets
from typing import Any

from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import chunk_key, new_id
from chalicelib.core.packs import pack_key
from tests.harness import BatchItem, Device, Harness, PendingBatch, chunk_id
from tests.unit.bad_input import World, each, expect
from tests.unit.test_batch_pipeline import crash_at, verdicts


def make_pack(blobs: list[bytes], pad: int = 64) -> tuple[str, bytes, dict[str, Any]]:
    """(pack id, bytes, declaration): a header, the blobs in chunk-id order, padding."""
    pid, data, ranges = new_id(), bytearray(b"SSPK\x01"), []
    for blob in sorted(blobs, key=chunk_id):
        ranges.append({"chunk": chunk_id(blob), "offset": len(data), "length": len(blob)})
        data += blob
    data += bytes(pad)
    return pid, bytes(data), {"pack_id": pid, "size": len(data), "blobs": ranges}


def post_batch(h: Harness, dev: Device, items: list[BatchItem],
               packs: list[dict[str, Any]]) -> PendingBatch:
    r = h.post("/v1/batches", {"entries": [i.body() for i in items], "packs": packs}, dev)
    assert r.status_code == 201, r.body
    ticket = dict(r.json_body)
    return PendingBatch(ticket["batch_id"], f"staging/{dev.user_id}/{ticket['batch_id']}",
                        items, ticket, b"".join(i.signature(dev) for i in items))


def put(h: Harness, key: str, data: bytes) -> None:
    h.rt.s3.put_object(Bucket=h.rt.settings.bucket, Key=key, Body=data)


def read_chunk(h: Harness, dev: Device, file_id: str) -> dict[str, bytes]:
    """Every chunk of the head as a reader gets it: a ranged GET of its pack
    (the URL the server gave, with the reader's own Range) or its v1 object."""
    body = h.head(dev, file_id)
    assert body is not None
    out = {}
    for c in body["chunks"]:
        if "pack" in c:
            url = body["packs"][c["pack"]]
            key = url.split("?")[0].split("/", 4)[-1]
            assert key == pack_key(dev.user_id, c["pack"])
            got = h.rt.s3.get_object(Bucket=h.rt.settings.bucket, Key=key,
                                     Range=f"bytes={c['offset']}-{c['offset'] + c['length'] - 1}")
            out[c["id"]] = got["Body"].read()
        else:
            out[c["id"]] = h.rt.s3.get_object(Bucket=h.rt.settings.bucket,
                                              Key=chunk_key(dev.user_id, c["id"]))["Body"].read()
    return out


def location_item(h: Harness, user: str, chunk: str) -> dict[str, Any]:
    got = h.rt.dynamodb.get_item(TableName=h.rt.settings.table,
                                 Key={"pk": {"S": f"L#{user}"}, "sk": {"S": chunk}})
    return dict(got.get("Item", {}))


def test_a_pack_that_never_arrived_rejects_only_the_entries_that_need_it(
        fast: Harness) -> None:
    h, dev = fast, fast.signup()
    c1, c2, c3, c4 = (secrets.token_bytes(n) for n in (300, 500, 700, 900))
    pid1, data1, decl1 = make_pack([c1, c2])
    pid2, _data2, decl2 = make_pack([c3])
    items = [BatchItem(new_id(), 0, chunks=(c2, c1)), BatchItem(new_id(), 0, chunks=(c3,)),
             BatchItem(new_id(), 0, chunks=(c4,)), BatchItem(new_id(), 0)]
    batch = post_batch(h, dev, items, [decl1, decl2])
    assert batch.ticket["chunk_urls"] == {chunk_id(c4): batch.ticket["chunk_urls"][chunk_id(c4)]}
    assert set(batch.ticket["pack_urls"]) == {pid1, pid2}
    assert "X-Amz-SignedHeaders=content-length%3Bhost%3Bif-none-match" in \
        batch.ticket["pack_urls"][pid1]  # create-only, of exactly the declared size
    put(h, pack_key(dev.user_id, pid1), data1)
    put(h, chunk_key(dev.user_id, chunk_id(c4)), c4)
    put(h, batch.key, batch.bundle)
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [
        ("accepted", 1), ("rejected", "1 referenced chunk(s) were never uploaded"),
        ("accepted", 1), ("accepted", 1)]
    assert read_chunk(h, dev, items[0].file_id) == {chunk_id(c1): c1, chunk_id(c2): c2}
    assert read_chunk(h, dev, items[2].file_id) == {chunk_id(c4): c4}  # a v1 chunk
    item = location_item(h, dev.user_id, chunk_id(c1))
    assert item["pack"] == {"S": pid1}
    assert int(item["off"]["N"]) == decl1["blobs"][[b["chunk"] for b in decl1["blobs"]]
                                                    .index(chunk_id(c1))]["offset"]
    assert location_item(h, dev.user_id, chunk_id(c3)) == {}  # never indexed


def test_a_pack_whose_size_is_a_lie_rejects_its_entries(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    c1, c2 = secrets.token_bytes(400), secrets.token_bytes(400)
    pid, data, decl = make_pack([c1])
    items = [BatchItem(new_id(), 0, chunks=(c1,)), BatchItem(new_id(), 0, chunks=(c2,))]
    batch = post_batch(h, dev, items, [decl])
    put(h, pack_key(dev.user_id, pid), data + b"x")  # one byte more than declared
    put(h, chunk_key(dev.user_id, chunk_id(c2)), c2)
    put(h, batch.key, batch.bundle)
    h.commit(batch.key)
    assert verdicts(h, dev, batch) == [
        ("rejected", "1 referenced chunk(s) were never uploaded"), ("accepted", 1)]
    assert location_item(h, dev.user_id, chunk_id(c1)) == {}


def test_another_users_pack_id_names_nothing_of_theirs(fast: Harness) -> None:
    h, a, b = fast, fast.signup(), fast.signup()
    c1 = secrets.token_bytes(600)
    pid, data, decl = make_pack([c1])
    mine = post_batch(h, a, [BatchItem(new_id(), 0, chunks=(c1,))], [decl])
    put(h, pack_key(a.user_id, pid), data)
    put(h, mine.key, mine.bundle)
    h.commit(mine.key)
    assert verdicts(h, a, mine) == [("accepted", 1)]
    # b declares a's pack (same id, same ranges) and never PUTs it
    theirs = post_batch(h, b, [BatchItem(new_id(), 0, chunks=(c1,))], [decl])
    assert pack_key(b.user_id, pid).split("/")[1] in theirs.ticket["pack_urls"][pid]
    put(h, theirs.key, theirs.bundle)
    h.commit(theirs.key)
    assert verdicts(h, b, theirs) == [("rejected", "1 referenced chunk(s) were never uploaded")]
    assert location_item(h, b.user_id, chunk_id(c1)) == {}
    assert location_item(h, a.user_id, chunk_id(c1))["pack"] == {"S": pid}


def test_dedup_against_a_pack_uploads_nothing_and_keeps_the_location(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    c1, c2 = secrets.token_bytes(500), secrets.token_bytes(800)
    pid, data, decl = make_pack([c1, c2])
    first = post_batch(h, dev, [BatchItem(new_id(), 0, chunks=(c1, c2))], [decl])
    put(h, pack_key(dev.user_id, pid), data)
    put(h, first.key, first.bundle)
    h.commit(first.key)
    r = h.post("/v1/chunks/missing", {"chunks": [chunk_id(c1), chunk_id(c2), "e" * 64]}, dev)
    assert r.json_body == {"missing": ["e" * 64]}
    # another file and a new version of the first, both of the packed chunks
    again = [BatchItem(new_id(), 0, chunks=(c2,)),
             BatchItem(first.entries[0].file_id, 1, chunks=(c1,))]
    second = post_batch(h, dev, again, [])
    assert second.ticket["chunk_urls"] == {} and "pack_urls" not in second.ticket
    put(h, second.key, second.bundle)
    h.commit(second.key)
    assert verdicts(h, dev, second) == [("accepted", 1), ("accepted", 2)]
    # a v1 single upload dedups too, and its commit leaves the location alone
    up = h.stage(dev, new_id(), 0, b"manifest", (c1,))
    assert h.commit(up.key).status == "accepted"
    assert location_item(h, dev.user_id, chunk_id(c1))["pack"] == {"S": pid}
    assert read_chunk(h, dev, up.file_id) == {chunk_id(c1): c1}
    assert read_chunk(h, dev, again[0].file_id) == {chunk_id(c2): c2}


def test_a_crash_after_the_check_then_a_retry_commits_once(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    c1 = secrets.token_bytes(700)
    pid, data, decl = make_pack([c1])
    batch = post_batch(h, dev, [BatchItem(new_id(), 0, chunks=(c1,))], [decl])
    put(h, pack_key(dev.user_id, pid), data)
    put(h, batch.key, batch.bundle)
    for step in ("checked", "committed"):
        try:
            h.commit(batch.key, crash_at(step))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the injected crash
            assert type(exc).__name__ == "Crash"
    assert h.commit(batch.key).status == FINISHED
    assert verdicts(h, dev, batch) == [("accepted", 1)]
    assert read_chunk(h, dev, batch.entries[0].file_id) == {chunk_id(c1): c1}


def test_bad_pack_declarations_are_4xx_and_nothing_is_recorded(world: World) -> None:
    h, dev = world.h, world.a
    c1, c2 = b"x" * 300, b"y" * 300
    item = BatchItem(new_id(), 0, chunks=(c1, c2))
    _, _, good = make_pack([c1, c2])
    blobs = good["blobs"]

    def check(packs: Any, status: int, error: str, words: str) -> None:
        r = h.post("/v1/batches", {"entries": [item.body()], "packs": packs}, dev)
        expect(r, status, error, words)
        world.assert_unchanged()

    each([
        ([{**good, "blobs": [{**blobs[0], "offset": good["size"] - 10}]}], 400, "bad_request",
         "outside the pack"),
        ([{**good, "blobs": [blobs[0], {**blobs[1], "offset": blobs[0]["offset"] + 1}]}],
         400, "bad_request", "overlap"),
        ([good, {**good, "pack_id": new_id(), "blobs": blobs[:1]}], 400, "bad_request",
         "also in packs[0]"),
        ([good, {**good, "blobs": []}], 400, "bad_request", "non-empty"),
        ([{**good, "pack_id": "../" + "a" * 29}], 400, "bad_request", "pack_id"),
        ([{**good, "blobs": [{**blobs[0], "length": 299}]}], 400, "bad_request",
         "299 bytes in the pack"),
        ([good] * 300, 413, "too_large", "at most 256 packs"),
        ({"pack_id": "x"}, 400, "bad_request", "must be a list"),
    ], check)
    r = h.post("/v1/chunks/missing", {"chunks": ["nope"]}, dev)
    expect(r, 400, "bad_request", "chunk id")
    r = h.post("/v1/chunks/missing", {"chunks": ["a" * 64] * 8193}, dev)
    expect(r, 413, "too_large", "at most 8192")


def test_the_answer_never_carries_pack_contents(fast: Harness) -> None:
    """What the server keeps of a declaration is ids and sealed ranges."""
    h, dev = fast, fast.signup()
    c1 = secrets.token_bytes(300)
    _pid, _data, decl = make_pack([c1])
    batch = post_batch(h, dev, [BatchItem(new_id(), 0, chunks=(c1,))], [decl])
    assert set(batch.ticket) == {"batch_id", "bundle_url", "bundle_headers", "chunk_urls",
                                 "chunk_headers",
                                 "expires_at", "pack_urls"}
    assert json.dumps(batch.ticket).count(decl["pack_id"]) == 2  # key and URL


def test_pack_urls_are_metered_as_issued(fast: Harness) -> None:
    """One PUT URL per pack (not per chunk in it), one GET URL per pack read."""
    h, dev = fast, fast.signup()
    chunks = [secrets.token_bytes(300 + i) for i in range(5)]
    pid, data, decl = make_pack(chunks)
    batch = post_batch(h, dev, [BatchItem(new_id(), 0, chunks=tuple(chunks))], [decl])
    put(h, pack_key(dev.user_id, pid), data)
    put(h, batch.key, batch.bundle)
    h.commit(batch.key)
    assert verdicts(h, dev, batch) == [("accepted", 1)]
    assert len(read_chunk(h, dev, batch.entries[0].file_id)) == 5
    got = h.get("/v1/account/usage", dev).json_body
    assert (got["put_requests"], got["get_requests"]) == (1 + 1, 1 + 1)  # bundle/manifest
