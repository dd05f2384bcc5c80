"""The pure core of batches: parsing and bounds, bundle offsets, per-entry
decisions, the plan of transaction groups (with hypothesis properties) and
the record's encoding."""
from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core import decide as core
from chalicelib.core.batch import (
    ACTIONS_PER_ENTRY,
    MAX_ACTIONS,
    MAX_GROUP_ENTRIES,
    BatchRecord,
    BatchRequest,
    Entry,
    EntryResult,
    bundle_offsets,
    decide_entries,
    entry_bytes,
    group_actions,
    group_seqs,
    pack_entries,
    parse_draft,
    plan_groups,
    resolve,
    result_of,
    unpack_entries,
)
from chalicelib.core.errors import BadRequest, TooLarge
from chalicelib.core.records import Version
from chalicelib.core.requests import Limits
from chalicelib.core.signatures import SIG_LEN

LIMITS = Limits()


def parse_batch(body: dict[str, Any], limits: Limits) -> BatchRequest:
    """A batch without chunk ranges: parsed, and resolved against no base."""
    return resolve(parse_draft(body, limits), {}, limits)


def fid() -> str:
    return secrets.token_hex(16)


def cid() -> str:
    return secrets.token_hex(32)


def entry(**kw: Any) -> dict[str, Any]:
    return {"file_id": fid(), "base_revision": 0, "manifest_size": 10,
            "chunks": [{"id": cid(), "size": 5}], **kw}


# -- parsing ------------------------------------------------------------------
def test_a_good_batch_parses_in_order() -> None:
    tomb = entry(chunks=[], tombstone=True, base_revision=3)
    body = {"entries": [entry(manifest_size=7), tomb]}
    req = parse_batch(body, LIMITS)
    assert [e.file_id for e in req.entries] == [body["entries"][0]["file_id"],
                                                tomb["file_id"]]
    assert req.entries[0].size == 7 + 5 and req.entries[1].tombstone
    assert req.bundle_size == 17 + 2 * SIG_LEN  # manifests, then a signature each
    assert req.chunk_sizes == {body["entries"][0]["chunks"][0]["id"]: 5}


def test_a_declared_bundle_digest_is_kept() -> None:
    req = parse_batch({"entries": [entry()], "bundle_sha256": "ab" * 32}, LIMITS)
    assert req.bundle_sha256 == bytes.fromhex("ab" * 32)
    assert parse_batch({"entries": [entry()]}, LIMITS).bundle_sha256 is None


@pytest.mark.parametrize(("body", "error", "words"), [
    ({}, BadRequest, "entries"),
    ({"entries": []}, BadRequest, "non-empty"),
    ({"entries": "x"}, BadRequest, "non-empty"),
    ({"entries": [entry()], "extra": 1}, BadRequest, "unknown field"),
    ({"entries": [5]}, BadRequest, "entries[0]"),
    ({"entries": [entry(), entry(file_id="../x")]}, BadRequest, "entries[1]: file_id"),
    ({"entries": [entry(manifest_size=0)]}, BadRequest, "manifest_size"),
    ({"entries": [entry(manifest_size=LIMITS.max_manifest_bytes + 1)]}, BadRequest,
     "manifest_size"),
    ({"entries": [entry(base_revision=-1)]}, BadRequest, "base_revision"),
    ({"entries": [entry(base_revision=True)]}, BadRequest, "base_revision"),
    ({"entries": [entry(tombstone="yes")]}, BadRequest, "tombstone"),
    ({"entries": [entry(tombstone=True)]}, BadRequest, "no chunks"),
    ({"entries": [entry(name="secret")]}, BadRequest, "unknown field"),
    ({"entries": [entry(chunks=[{"id": "c" * 64, "size": 0}])]}, BadRequest, "chunk size"),
    ({"entries": [entry(chunks=[{"id": cid(), "size": 1}] * (LIMITS.max_chunks + 1))]},
     TooLarge, "entries[0]"),
    ({"entries": [entry() for _ in range(LIMITS.max_batch_entries + 1)]}, TooLarge,
     "1000 entries"),
    # the digest bound into the bundle's PUT URL
    ({"entries": [entry()], "bundle_sha256": "AB" * 32}, BadRequest, "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": "ab" * 31}, BadRequest, "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": "ab" * 33}, BadRequest, "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": "ab" * 31 + "\n\n"}, BadRequest,
     "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": 7}, BadRequest, "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": ["ab" * 32]}, BadRequest, "bundle_sha256"),
    ({"entries": [entry()], "bundle_sha256": "zz" * 32}, BadRequest, "64 lowercase hex"),
    ({"entries": [entry(bundle_sha256="ab" * 32)]}, BadRequest, "unknown field"),
])
def test_bad_batches_are_refused_with_a_reason(body: dict[str, Any], error: type,
                                               words: str) -> None:
    with pytest.raises(error) as got:
        parse_batch(body, LIMITS)
    assert type(got.value) is error and words in got.value.message


def test_duplicate_file_ids_are_refused() -> None:
    same = fid()
    with pytest.raises(BadRequest, match=r"entries\[2\].*twice.*entries\[0\]"):
        parse_batch({"entries": [entry(file_id=same), entry(), entry(file_id=same)]}, LIMITS)


def test_chunk_references_are_bounded_in_all() -> None:
    per = LIMITS.max_batch_chunks // 4
    chunks = [{"id": cid(), "size": 1} for _ in range(per)]
    ok = {"entries": [entry(chunks=chunks) for _ in range(4)]}
    assert len(parse_batch(ok, LIMITS).entries) == 4
    with pytest.raises(TooLarge, match="8192 chunks"):
        parse_batch({"entries": [*ok["entries"], entry()]}, LIMITS)


def test_the_bundle_is_bounded() -> None:
    small = Limits(max_bundle_bytes=25 + 2 * SIG_LEN)
    assert parse_batch({"entries": [entry(), entry(manifest_size=15)]}, small)
    with pytest.raises(TooLarge, match=f"{25 + 2 * SIG_LEN} bytes"):
        parse_batch({"entries": [entry(), entry(manifest_size=16)]}, small)


# -- bundle offsets -------------------------------------------------------------
@given(st.lists(st.integers(1, 10**6), max_size=50))
def test_each_manifest_is_its_own_slice_of_the_bundle(sizes: list[int]) -> None:
    offsets = bundle_offsets(sizes)
    assert len(offsets) == len(sizes)
    at = 0
    for off, size in zip(offsets, sizes, strict=True):
        assert off == at
        at += size
    assert at == sum(sizes)


# -- decisions --------------------------------------------------------------------
def record(entries: list[Entry], results: dict[int, EntryResult] | None = None) -> BatchRecord:
    return BatchRecord(fid(), fid(), fid(), tuple(entries), core.PENDING, 0, results or {})


def e(base: int = 0, size: int = 10, tombstone: bool = False) -> Entry:
    return Entry(fid(), base, size, tombstone, () if tombstone else (cid(),), size + 1)


def head(file_id: str, rev: int, upload: str = "0" * 32, deleted: bool = False) -> Version:
    return Version(file_id, rev, deleted, None, 1, (), upload, "d" * 32, 0)


def test_each_entry_is_decided_on_its_own() -> None:
    entries = [e(0), e(2), e(1), e(5), e(1, tombstone=True), e(0)]
    rec = record(entries)
    heads = {entries[1].file_id: head(entries[1].file_id, 2),
             entries[2].file_id: head(entries[2].file_id, 3),
             entries[3].file_id: head(entries[3].file_id, 4),
             entries[4].file_id: head(entries[4].file_id, 1)}
    got = decide_entries(rec, heads, rec.bundle_size, {5: 2})
    assert got == {0: core.Accept(1), 1: core.Accept(3), 2: core.Conflict(3),
                   3: core.Reject("base revision 5 is ahead of the head (4)"),
                   4: core.Accept(2),
                   5: core.Reject("2 referenced chunk(s) were never uploaded")}
    assert result_of(got[2]) == EntryResult(core.CONFLICT, winner_revision=3)
    assert result_of(got[5]) == EntryResult(core.REJECTED, reason=got[5].reason)  # type: ignore[union-attr]
    assert result_of(got[0]) is None


def test_a_bundle_of_the_wrong_size_rejects_every_entry() -> None:
    rec = record([e(size=4), e(size=6)])
    got = decide_entries(rec, {}, 11, {})
    assert got == {i: core.Reject(f"bundle is 11 bytes but the entries declare "
                                  f"{10 + 2 * SIG_LEN}")
                   for i in (0, 1)}


def test_an_absent_bundle_decides_nothing() -> None:
    rec = record([e(), e()])
    assert all(isinstance(d, core.Skip) for d in decide_entries(rec, {}, None, {}).values())


def test_entries_already_done_or_committed_by_this_batch_are_skipped() -> None:
    entries = [e(0), e(0), e(0)]
    rec = record(entries, {0: EntryResult(core.ACCEPTED, revision=1, seq=1)})
    heads = {entries[1].file_id: head(entries[1].file_id, 1, upload=rec.batch_id)}
    got = decide_entries(rec, heads, rec.bundle_size, {})
    assert set(got) == {1, 2}
    assert isinstance(got[1], core.Skip) and got[2] == core.Accept(1)
    assert decide_entries(rec, heads, rec.bundle_size, {}, only=[2]) == {2: core.Accept(1)}


# -- the plan of transactions -------------------------------------------------------
def test_groups_fill_the_transaction_limit() -> None:
    assert group_actions(range(MAX_GROUP_ENTRIES)) <= MAX_ACTIONS
    assert group_actions(range(MAX_GROUP_ENTRIES + 1)) > MAX_ACTIONS
    groups = plan_groups(list(range(1000)), {})
    assert len(groups) == 22  # 1,000 small files: 22 transactions (47 each), not 1,000
    assert plan_groups([], {}) == []


@given(accepted=st.lists(st.integers(0, 2000), unique=True, max_size=300),
       chunks=st.lists(st.integers(0, 4096), min_size=1, max_size=300),
       max_entries=st.integers(1, MAX_GROUP_ENTRIES),
       max_bytes=st.integers(1, 3 * 1024 * 1024),
       last=st.integers(0, 2**40))
def test_plan_properties(accepted: list[int], chunks: list[int], max_entries: int,
                         max_bytes: int, last: int) -> None:
    weights = {i: entry_bytes(Entry("a" * 32, 0, 1, False, ("c" * 64,) * chunks[n % len(chunks)],
                                    1)) for n, i in enumerate(accepted)}
    groups = plan_groups(accepted, weights, max_entries, max_bytes)
    flat = [i for g in groups for i in g]
    assert flat == accepted  # every accepted entry in exactly one group, in order
    for g in groups:
        assert g and len(g) <= max_entries
        assert ACTIONS_PER_ENTRY * len(g) + 2 <= MAX_ACTIONS
        assert len(g) == 1 or sum(weights[i] for i in g) <= max_bytes
    # committed back to back, the groups take one contiguous feed range
    seqs: list[int] = []
    head = last
    for g in groups:
        taken = group_seqs(head, g)
        assert list(taken) == list(g)
        assert list(taken.values()) == list(range(head + 1, head + 1 + len(g)))
        seqs.extend(taken.values())
        head += len(g)
    assert seqs == list(range(last + 1, last + 1 + len(accepted)))


# -- the record's encoding ------------------------------------------------------------
@given(st.lists(st.tuples(st.integers(0, 2**53), st.integers(1, 4 * 2**20),
                          st.booleans(), st.integers(0, 5)), max_size=20))
def test_entries_pack_and_unpack(raw: list[tuple[int, int, bool, int]]) -> None:
    entries = [Entry(fid(), base, msize, tomb, tuple(cid() for _ in range(n)),
                     msize + 7 * n) for base, msize, tomb, n in raw]
    assert unpack_entries(*pack_entries(entries)) == tuple(entries)


def test_the_largest_batch_record_fits_an_item() -> None:
    per = LIMITS.max_batch_chunks // LIMITS.max_batch_entries
    entries = [Entry(fid(), 2**53, 4 * 2**20, False, tuple(cid() for _ in range(per + 1)),
                     2**40) for _ in range(LIMITS.max_batch_entries)]
    head, chunks = pack_entries(entries)
    assert len(head) + LIMITS.max_batch_chunks * 32 <= 320 * 1024  # of 400 KB


def test_a_groups_changes_pack_and_unpack_in_seq_order() -> None:
    from chalicelib.core.batch import pack_changes, unpack_changes

    changes = [("a" * 32, 1, False), ("b" * 32, 2**40, True), ("c" * 32, 7, False)]
    assert unpack_changes(pack_changes(changes)) == changes
    assert len(pack_changes(changes * 16)) == 25 * 48  # the largest group: 1.2 KB
