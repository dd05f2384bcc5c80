"""Chunk lists sent against their base revision: the server's pure parse,
expand and resolve (chalicelib/core/chunk_ranges.py, core/batch.py), and
the client's diff (sealsync_client/chunk_delta.py) expanded by the server's
own code back into exactly the list the client meant."""
from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sealsync_client.chunk_delta import against_base, as_listed, chunks_sha256

from chalicelib.core.batch import parse_draft, resolve
from chalicelib.core.chunk_ranges import (
    BaseRange,
    ChunkList,
    Explicit,
    expand,
    parse_chunk_list,
)
from chalicelib.core.errors import BadRequest, TooLarge
from chalicelib.core.records import Version
from chalicelib.core.requests import Limits
from chalicelib.core.signatures import chunks_digest

LIMITS = Limits()
FILE = "ab" * 16


def cid(n: int) -> str:
    return hashlib.sha256(n.to_bytes(4, "big")).hexdigest()


def version(ids: list[str], revision: int = 3, deleted: bool = False) -> Version:
    return Version(file_id=FILE, revision=revision, deleted=deleted, manifest_key="m",
                   size=1, chunk_ids=tuple(ids), upload_id="u" * 32, device_id="d" * 32,
                   committed=0)


def entry(chunks: list[dict[str, Any]], full: list[str] | None = None,
          base: int = 3, **extra: Any) -> dict[str, Any]:
    out = {"file_id": FILE, "base_revision": base, "manifest_size": 100, "chunks": chunks,
           **extra}
    if full is not None:
        out["chunks_sha256"] = chunks_digest(full).hex()
    return out


BASE = [cid(i) for i in range(10)]


# -- parse and expand ---------------------------------------------------------------
def test_a_list_mixes_chunks_and_ranges_and_expands_in_order() -> None:
    new = [*BASE[:4], cid(100), *BASE[6:]]
    raw = [{"base": 0, "count": 4, "size": 40}, {"id": cid(100), "size": 7},
           {"base": 6, "count": 4, "size": 40}]
    chunks = parse_chunk_list(raw, chunks_digest(new).hex(), LIMITS)
    assert chunks.segments == (BaseRange(0, 4, 40), Explicit(cid(100), 7), BaseRange(6, 4, 40))
    assert (chunks.uses_base, chunks.refs, chunks.size) == (True, 9, 87)
    assert expand(chunks, BASE) == tuple(new)


def test_a_full_list_needs_no_digest_and_no_base() -> None:
    chunks = parse_chunk_list([{"id": cid(1), "size": 5}], None, LIMITS)
    assert not chunks.uses_base and expand(chunks, ()) == (cid(1),)


@pytest.mark.parametrize(("item", "words"), [
    ({"base": 0, "count": 0, "size": 1}, "count must be between 1"),
    ({"base": 0, "count": -3, "size": 1}, "count must be between 1"),
    ({"base": -1, "count": 1, "size": 1}, "base must be between 0"),
    ({"base": 4096, "count": 1, "size": 1}, "base must be between 0"),
    ({"base": 0, "count": 2, "size": 1}, "size must be between 2"),
    ({"base": 0, "count": 1, "size": 16 * 1024 * 1024 + 1}, "size must be between 1"),
    ({"base": 0, "count": 1}, "size must be an integer"),
    ({"base": "0", "count": 1, "size": 1}, "base must be an integer"),
    ({"base": 0, "count": True, "size": 1}, "count must be an integer"),
    ({"base": 0, "count": 1, "size": 1, "id": cid(1)}, "unknown field"),
])
def test_a_bad_range_is_a_bad_request(item: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        parse_chunk_list([item], "00" * 32, LIMITS)


def test_ranges_need_the_digest_of_the_full_list() -> None:
    with pytest.raises(BadRequest, match="chunks_sha256 is required"):
        parse_chunk_list([{"base": 0, "count": 1, "size": 1}], None, LIMITS)
    with pytest.raises(BadRequest, match="chunks_sha256 must be"):
        parse_chunk_list([{"base": 0, "count": 1, "size": 1}], "xyz", LIMITS)


def test_ranges_count_as_the_chunks_they_name_against_the_version_limit() -> None:
    small = Limits(max_chunks=8)
    parse_chunk_list([{"base": 0, "count": 8, "size": 8}], "00" * 32, small)
    with pytest.raises(TooLarge, match="at most 8 chunks"):
        parse_chunk_list([{"base": 0, "count": 7, "size": 7}, {"id": cid(1), "size": 1},
                          {"base": 0, "count": 1, "size": 1}], "00" * 32, small)


def test_a_range_outside_the_base_or_a_wrong_digest_is_refused() -> None:
    outside = ChunkList((BaseRange(8, 3, 3),), chunks_digest(BASE[8:]))
    with pytest.raises(BadRequest, match="outside the base revision's 10 chunks"):
        expand(outside, BASE)
    wrong = ChunkList((BaseRange(0, 2, 2),), chunks_digest(BASE[1:3]))
    with pytest.raises(BadRequest, match="chunks_sha256 is not the digest"):
        expand(wrong, BASE)


# -- a batch: parse, then resolve against the bases read ----------------------------
def test_resolve_expands_against_the_base_and_skips_its_chunks_for_presigning() -> None:
    new = [*BASE[:5], cid(100), *BASE[5:]]
    body = {"entries": [entry([{"base": 0, "count": 5, "size": 50},
                               {"id": cid(100), "size": 9},
                               {"base": 5, "count": 5, "size": 50}], new)]}
    draft = parse_draft(body, LIMITS)
    assert draft.bases() == {FILE: 3}
    req = resolve(draft, {FILE: version(BASE)}, LIMITS)
    (e,) = req.entries
    assert e.chunk_ids == tuple(new) and e.size == 50 + 9 + 50 + 100
    assert req.chunk_sizes == {cid(100): 9}  # only explicit chunks are looked up
    assert req.from_base == frozenset(BASE)


def test_entries_without_ranges_need_no_base_read() -> None:
    body = {"entries": [entry([{"id": cid(1), "size": 3}], base=0)]}
    draft = parse_draft(body, LIMITS)
    assert draft.bases() == {}
    assert resolve(draft, {}, LIMITS).entries[0].chunk_ids == (cid(1),)


@pytest.mark.parametrize(("base", "words"), [
    (None, "entries\\[0\\]: its base revision 3 is not a stored version"),
    (version(BASE, deleted=True), "entries\\[0\\]: its base revision 3 is not a stored"),
    (version(BASE, revision=2), "entries\\[0\\]: its base revision 3 is not a stored"),
    (version(BASE[:3]), "entries\\[0\\]: the range base=0 count=5 lies outside"),
    (version(BASE[1:]), "entries\\[0\\]: chunks_sha256 is not the digest"),
])
def test_a_base_that_is_not_what_the_ranges_assume_is_refused(base: Version | None,
                                                              words: str) -> None:
    body = {"entries": [entry([{"base": 0, "count": 5, "size": 5}], BASE[:5])]}
    with pytest.raises(BadRequest, match=words):
        resolve(parse_draft(body, LIMITS), {} if base is None else {FILE: base}, LIMITS)


def test_a_range_on_a_new_file_is_refused_at_parse() -> None:
    body = {"entries": [entry([{"base": 0, "count": 1, "size": 1}], BASE[:1], base=0)]}
    with pytest.raises(BadRequest, match="entries\\[0\\]: a new file"):
        parse_draft(body, LIMITS)


def test_ranges_count_against_the_batch_limit() -> None:
    small = Limits(max_batch_chunks=10)
    other = "cd" * 16
    body = {"entries": [entry([{"base": 0, "count": 8, "size": 8}], BASE[:8]),
                        {**entry([{"base": 0, "count": 3, "size": 3}], BASE[:3]),
                         "file_id": other}]}
    with pytest.raises(TooLarge, match="at most 10 chunks in all"):
        parse_draft(body, small)


def test_a_tombstone_names_no_range() -> None:
    body = {"entries": [entry([{"base": 0, "count": 1, "size": 1}], BASE[:1],
                              tombstone=True)]}
    with pytest.raises(BadRequest, match="a tombstone references no chunks"):
        parse_draft(body, LIMITS)


# -- the client's diff, expanded by the server ------------------------------------------
def test_a_changed_middle_is_two_ranges_around_the_new_chunks() -> None:
    base = sorted(cid(i) for i in range(3000))
    gone = set(base[1400:1405])
    new = sorted([*(c for c in base if c not in gone), cid(9001), cid(9002)])
    delta = against_base(base, [(c, 1000) for c in new])
    assert len(delta) <= 2 * 7 + 1  # at most a run around each change
    chunks = parse_chunk_list(delta, chunks_sha256(new), LIMITS)
    assert expand(chunks, base) == tuple(new)
    assert chunks.size == 1000 * len(new)


def sizes_of(ids: list[str]) -> list[tuple[str, int]]:
    return [(c, 1 + int(c[:4], 16)) for c in ids]  # one size per id, as for real chunks


edits = st.lists(st.tuples(st.sampled_from(["keep", "drop", "add", "dup"]),
                           st.integers(0, 10**6)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 400), max_size=300), edits, st.booleans())
def test_diff_then_expand_is_the_new_list(base_keys: list[int], ops: list[tuple[str, int]],
                                          in_order: bool) -> None:
    """For random edits (kept, dropped, added and repeated chunks; sorted
    like the client's entries or in any order), what the client sends
    expands on the server to exactly its list, with the same sizes."""
    base = [cid(k) for k in base_keys]
    if in_order:
        base.sort()
    new = list(base)
    for op, n in ops:
        at = n % (len(new) + 1)
        if op == "drop" and new:
            del new[at % len(new)]
        elif op == "add":
            new.insert(at, cid(1000 + n % 500))
        elif op == "dup" and new:
            new.insert(at, new[n % len(new)])
    if in_order:
        new.sort()
    refs = sizes_of(new)
    delta = against_base(base, refs)
    chunks = parse_chunk_list(delta, chunks_sha256(new), LIMITS)
    assert expand(chunks, base) == tuple(new)
    assert chunks.size == sum(s for _, s in refs)
    assert len(delta) <= len(new)


def test_a_download_is_recorded_with_its_revision_only_in_the_order_served() -> None:
    ids = [cid(3), cid(1), cid(3), cid(2)]
    in_order = [{"id": c} for c in dict.fromkeys(sorted(ids))]
    assert as_listed(ids, in_order, 7) == (sorted(ids), 7)
    assert as_listed(ids, in_order[::-1], 7) == (sorted(ids), None)
    assert as_listed(ids, None, 7) == (sorted(ids), None)
