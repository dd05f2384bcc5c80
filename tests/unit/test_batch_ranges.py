"""Edits sent against their base (POST /v1/batches with chunk ranges,
docs/DESIGN.md "Edits sent against their base") on moto + fakeredis,
through the real API and commit handler: the full list is what commits,
the base's chunks are neither looked up nor presigned, and every bad range
is a 4xx that records nothing."""
from __future__ import annotations

from typing import Any

import pytest

from chalicelib.adapters.meta import Meta
from chalicelib.core.ids import new_id
from tests.harness import BatchItem, Device, Harness, chunk_id
from tests.integration.support import table_items
from tests.unit.bad_input import World, each, expect

CHUNKS = tuple(f"chunk {i:03d}".encode() * (i + 1) for i in range(40))


def commit(h: Harness, dev: Device, items: list[BatchItem]) -> dict[str, Any]:
    batch = h.stage_batch(dev, items)
    h.commit(batch.key)
    return h.batch(dev, batch.batch_id)


def ranges(chunks: tuple[bytes, ...], spans: list[tuple[int, int] | bytes]) -> list[Any]:
    """The wire list: (start, count) of `chunks` as a range, bytes as itself."""
    out: list[Any] = []
    for s in spans:
        if isinstance(s, bytes):
            out.append({"id": chunk_id(s), "size": len(s)})
        else:
            start, count = s
            out.append({"base": start, "count": count,
                        "size": sum(len(c) for c in chunks[start:start + count])})
    return out


def stored_list(h: Harness, dev: Device, file_id: str, revision: int) -> list[str]:
    got = h.rt.meta.get_revision(dev.user_id, file_id, revision)
    assert got is not None
    return list(got.chunk_ids)


def test_an_edit_sent_as_ranges_commits_the_full_list(fast: Harness,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    h, dev = fast, fast.signup()
    file_id = new_id()
    assert commit(h, dev, [BatchItem(file_id, 0, chunks=CHUNKS)])["entries"][0]["revision"] == 1

    new, changed = b"the changed middle", CHUNKS[:15] + CHUNKS[17:]
    edited = CHUNKS[:15] + (new,) + CHUNKS[17:]
    looked_up: list[set[str]] = []
    real = h.rt.meta.known_chunks
    monkeypatch.setattr(h.rt.meta, "known_chunks",
                        lambda user, ids, **kw: looked_up.append(set(ids)) or real(user, ids, **kw))
    item = BatchItem(file_id, 1, chunks=edited,
                     sent=ranges(CHUNKS, [(0, 15), new, (17, 23)]))
    batch = h.stage_batch(dev, [item])
    assert set(batch.ticket["chunk_urls"]) == {chunk_id(new)}  # the base's are stored
    assert looked_up == [{chunk_id(new)}]
    h.commit(batch.key)
    verdict = h.batch(dev, batch.batch_id)["entries"][0]
    assert (verdict["status"], verdict["revision"]) == ("accepted", 2), verdict

    full = [chunk_id(c) for c in edited]
    assert stored_list(h, dev, file_id, 2) == full  # the record kept the expanded list
    head = h.head(dev, file_id)
    assert head is not None and [c["id"] for c in head["chunks"]] == full
    assert head["size"] == sum(len(c) for c in edited) + len(item.manifest)
    assert changed  # the unchanged runs were never sent as ids


def test_ranges_and_full_lists_mix_in_one_batch_with_one_base_read(
        fast: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h, dev = fast, fast.signup()
    files = [new_id() for _ in range(3)]
    commit(h, dev, [BatchItem(f, 0, chunks=CHUNKS[:5]) for f in files])
    reads: list[dict[str, int]] = []
    real = h.rt.meta.revisions
    monkeypatch.setattr(h.rt.meta, "revisions",
                        lambda user, wanted: reads.append(dict(wanted)) or real(user, wanted))
    items = [BatchItem(files[0], 1, chunks=CHUNKS[:5] + CHUNKS[6:7],
                       sent=ranges(CHUNKS, [(0, 5), CHUNKS[6]])),
             BatchItem(files[1], 1, chunks=CHUNKS[1:5]),  # a full list, as before
             BatchItem(files[2], 1, chunks=CHUNKS[2:4], sent=ranges(CHUNKS, [(2, 2)])),
             BatchItem(new_id(), 0, chunks=CHUNKS[:2])]
    got = commit(h, dev, items)
    assert [e["status"] for e in got["entries"]] == ["accepted"] * 4, got
    assert reads == [{files[0]: 1, files[2]: 1}]  # one read, only for entries with ranges
    assert stored_list(h, dev, files[0], 2) == [chunk_id(c) for c in items[0].chunks]
    assert stored_list(h, dev, files[2], 2) == [chunk_id(c) for c in CHUNKS[2:4]]


def test_a_batch_without_ranges_reads_no_base(fast: Harness,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    h, dev = fast, fast.signup()
    monkeypatch.setattr(h.rt.meta, "revisions", lambda *_: pytest.fail("read a base"))
    assert commit(h, dev, [BatchItem(new_id(), 0, chunks=CHUNKS[:3])])["entries"][0][
        "status"] == "accepted"


def test_the_bases_are_read_100_to_a_call(fast: Harness) -> None:
    """Meta.revisions: one BatchGetItem per 100 bases; absent ones left out."""
    h, dev = fast, fast.signup()
    files = [new_id() for _ in range(150)]
    for k in range(0, 150, 50):
        commit(h, dev, [BatchItem(f, 0, chunks=CHUNKS[:2]) for f in files[k:k + 50]])
    calls: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(h.rt.dynamodb, name)

        def batch_get_item(self, **kw: Any) -> Any:
            calls.append(len(kw["RequestItems"][h.rt.settings.table]["Keys"]))
            return h.rt.dynamodb.batch_get_item(**kw)

    meta = Meta(Counting(), h.rt.settings.table)
    got = meta.revisions(dev.user_id, {**dict.fromkeys(files, 1), new_id(): 1, files[0]: 1})
    assert calls == [100, 51]
    assert set(got) == set(files)
    assert all(v.chunk_ids == tuple(chunk_id(c) for c in CHUNKS[:2]) for v in got.values())


def test_a_range_against_a_deleted_base_is_refused(fast: Harness) -> None:
    h, dev = fast, fast.signup()
    file_id = new_id()
    commit(h, dev, [BatchItem(file_id, 0, chunks=CHUNKS[:3])])
    assert commit(h, dev, [BatchItem(file_id, 1, tombstone=True)])["entries"][0][
        "revision"] == 2
    item = BatchItem(file_id, 2, chunks=CHUNKS[:3], sent=ranges(CHUNKS, [(0, 3)]))
    before = table_items(h.rt)
    expect(h.post("/v1/batches", {"entries": [item.body()]}, dev), 400, "bad_request",
           "entries[0]", "base revision 2 is not a stored version")
    assert table_items(h.rt) == before  # nothing recorded


def test_bad_ranges_are_4xx_and_record_nothing(world: World) -> None:
    """world.a_file is at revision 1 with one chunk (b"a chunk")."""
    h, a = world.h, world.a
    one = (b"a chunk",)

    def edit(base: int, sent: list[Any], file_id: str | None = None,
             chunks: tuple[bytes, ...] = one) -> dict[str, Any]:
        return BatchItem(file_id or world.a_file, base, chunks=chunks, sent=sent).body()

    good = edit(1, ranges(one, [(0, 1)]))
    many = [{"base": 0, "count": 4000, "size": 4000}]
    cases: list[tuple[Any, int, str, str]] = [
        ({"entries": [edit(0, ranges(one, [(0, 1)]), new_id())]}, 400, "bad_request",
         "a new file (base_revision 0)"),
        ({"entries": [edit(5, ranges(one, [(0, 1)]))]}, 400, "bad_request",
         "base revision 5 is not a stored version"),
        # another user's file: not a revision of this user's
        ({"entries": [edit(1, ranges(one, [(0, 1)]), world.b_file)]}, 400, "bad_request",
         "base revision 1 is not a stored version"),
        ({"entries": [edit(1, [{"base": 0, "count": 2, "size": 14}], chunks=one * 2)]}, 400,
         "bad_request", "outside the base revision's 1 chunks"),
        ({"entries": [edit(1, [{"base": 1, "count": 1, "size": 7}])]}, 400, "bad_request",
         "outside the base revision's 1 chunks"),
        ({"entries": [edit(1, [{"base": 0, "count": 0, "size": 7}])]}, 400, "bad_request",
         "count must be between 1"),
        ({"entries": [edit(1, [{"base": 0, "count": -1, "size": 7}])]}, 400, "bad_request",
         "count must be between 1"),
        ({"entries": [edit(1, [{"base": 0, "count": 1, "size": 0}])]}, 400, "bad_request",
         "size must be between 1"),
        ({"entries": [edit(1, [{"base": 0, "count": 1, "size": 2**40}])]}, 400,
         "bad_request", "size must be between 1"),
        ({"entries": [edit(1, [{"base": 0, "count": 1, "size": 7, "pad": 1}])]}, 400,
         "bad_request", "unknown field"),
        ({"entries": [{**good, "chunks_sha256": "00" * 32}]}, 400, "bad_request",
         "chunks_sha256 is not the digest"),
        ({"entries": [{k: v for k, v in good.items() if k != "chunks_sha256"}]}, 400,
         "bad_request", "chunks_sha256 is required"),
        ({"entries": [edit(1, many + many)]}, 413, "too_large",
         "at most 4096 chunks"),
        ({"entries": [edit(1, many, world.a_file), edit(1, many, new_id()),
                      edit(1, many, new_id())]}, 413, "too_large", "8192 chunks in all"),
        ({"entries": [good, edit(1, ranges(one, [(0, 1)]), new_id())]}, 400, "bad_request",
         "entries[1]: its base revision 1 is not a stored version"),
    ]

    def check(body: Any, status: int, error: str, words: str) -> None:
        expect(h.post("/v1/batches", body, a), status, error, words)

    each(cases, check)
    world.assert_unchanged()
    # and the good one is good
    assert h.post("/v1/batches", {"entries": [good]}, a).status_code == 201
