"""packing.py: which chunks go in which pack, a pack sealed into a reused
buffer, and downloads as coalesced ranges fetched in file order."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sealsync_client import crypto, packing
from sealsync_client import pack as P
from sealsync_client.chunking import Chunker
from sealsync_client.errors import IntegrityError
from sealsync_client.keys import AccountKeys
from sealsync_client.packing import (
    READ_GAP,
    PackFailed,
    RangedFetch,
    Source,
    plan_packs,
    read_plan,
    seal_pack,
)
from sealsync_client.pipeline import Span, chunk_spans, open_chunk

USER = "0123456789abcdef0123456789abcdef"
RING = AccountKeys(bytes(range(32))).root_keyring()
MiB = 1024 * 1024


def spans_of(path: Path) -> list[Span]:
    return chunk_spans(path, RING, Chunker(RING.chunker))


@contextmanager
def plain(size: int) -> Any:
    yield bytearray(crypto.padded_len(size))


def test_plans_cut_the_missing_chunks_in_file_order_under_the_target(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(6 * MiB))
    spans = spans_of(path)
    skip = {spans[1].id, spans[4].id}  # the server has these
    missing = {s.id for s in spans} - skip
    sources = [Source("f1", path, s) for s in spans] + [Source("f2", path, spans[0])]
    plans = plan_packs(sources, missing, target=2 * MiB)
    assert len(plans) >= 3
    assert all(p.layout.size <= 2 * MiB for p in plans)
    packed = [c for p in plans for c in p.sources]
    assert sorted(packed) == sorted(missing)  # each missing chunk once, nothing else
    # neighbours share a pack: pack i holds chunks before pack i+1's, in file order
    order = {s.id: n for n, s in enumerate(spans)}
    ranges = [(min(order[c] for c in p.sources), max(order[c] for c in p.sources))
              for p in plans]
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for p in plans:  # the declaration is the canonical layout: chunk-id order
        decl = p.declaration()
        assert [b["chunk"] for b in decl["blobs"]] == sorted(p.sources)
        assert [b["length"] for b in decl["blobs"]] == [
            crypto.sealed_len(p.sources[b["chunk"]].span.size) for b in decl["blobs"]]
        assert decl["size"] == P.layout((b["chunk"], b["length"]) for b in decl["blobs"]).size
    assert len({p.pack_id for p in plans}) == len(plans)


def test_a_sealed_pack_is_a_valid_pack_whose_blobs_open(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(3 * MiB)
    path.write_bytes(data)
    spans = spans_of(path)
    [plan] = plan_packs([Source("f", path, s) for s in spans], {s.id for s in spans})
    buf = bytearray(b"\xff" * (plan.layout.size + 100))  # a dirty reused buffer
    with ThreadPoolExecutor(4) as pool:
        view = seal_pack(RING, USER, plan, buf, plain, pool)
    index = P.open_pack(RING, USER, plan.pack_id, bytes(view))  # header, gap, trailer too
    assert index.blobs == plan.layout.blobs
    for s in spans:
        ref = index.find(s.id)
        assert ref is not None
        got = open_chunk(RING, USER, s.id, s.size, P.blob_at(view, ref))
        assert got == data[s.offset:s.offset + s.size]


def test_a_file_that_changed_fails_its_pack_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(os.urandom(MiB))
    spans = spans_of(path)
    [plan] = plan_packs([Source("owner", path, s) for s in spans], {s.id for s in spans})
    path.write_bytes(os.urandom(MiB))
    with ThreadPoolExecutor(2) as pool, pytest.raises(PackFailed) as caught:
        seal_pack(RING, USER, plan, bytearray(plan.layout.size), plain, pool)
    assert caught.value.owner == "owner"


def body_for(refs: list[P.BlobRef], pack: str = "p" * 32) -> dict[str, Any]:
    return {"packs": {pack: "url-p"},
            "chunks": [{"id": r.chunk_id, "pack": pack, "offset": r.offset,
                        "length": r.length} for r in refs]}


def test_close_ranges_share_one_get_far_ones_do_not() -> None:
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    refs = [P.BlobRef(a, 5, 100), P.BlobRef(b, 105 + READ_GAP, 100),
            P.BlobRef(c, 205 + 2 * READ_GAP + 1, 100)]
    jobs, at = read_plan(body_for(refs), [c, a, b])
    assert [j.byte_range for j in jobs] == [(refs[2].offset, 100), (5, 200 + READ_GAP)]
    assert at == {c: 0, a: 1, b: 1}


def test_ranged_fetch_hands_out_each_blob_and_drops_used_ranges() -> None:
    blobs = {f"{i:064x}": os.urandom(1000 + i) for i in range(6)}
    pack = bytearray(b"HDR--")
    refs = []
    for cid, blob in blobs.items():
        refs.append(P.BlobRef(cid, len(pack), len(blob)))
        pack += blob
    gets: list[tuple[int, int] | None] = []

    def get(url: str, byte_range: tuple[int, int] | None = None) -> bytes:
        gets.append(byte_range)  # small ranges: read as bytes, no pooled buffer
        assert url == "url-p" and byte_range is not None
        return bytes(pack[byte_range[0]:byte_range[0] + byte_range[1]])

    order = [refs[3].chunk_id, refs[0].chunk_id, refs[3].chunk_id, refs[5].chunk_id]
    seen: list[int] = []
    with ThreadPoolExecutor(2) as pool:
        fetch = RangedFetch(get, body_for(refs), order, pool, 4, seen.append)
        got = [fetch(c) for c in order]
    assert got == [blobs[c] for c in order]
    assert len(gets) == 1  # one range: every wanted blob is within the gap
    assert fetch._live == {}  # used up: nothing held
    assert sum(seen) == sum(len(blobs[c]) for c in order)


def test_a_download_reuses_a_few_range_buffers_whatever_its_length(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """40 far-apart ranges of over half a READ_SPAN (8 KiB here), 4 GETs
    ahead: each read into a buffer no range in flight or not used up holds,
    and only as many buffers made as READ_AHEAD_BYTES allows, plus the one
    the next chunk needs."""
    monkeypatch.setattr(packing, "READ_SPAN", 8192)
    monkeypatch.setattr(packing, "READ_AHEAD_BYTES", 3 * 8192)
    blobs = {f"{i:064x}": os.urandom(5000 + i) for i in range(40)}
    pack, refs = bytearray(), []
    for cid, blob in blobs.items():
        pack += bytes(READ_GAP + 1)  # too far apart to share a GET
        refs.append(P.BlobRef(cid, len(pack), len(blob)))
        pack += blob
    buffers: set[int] = set()
    busy: set[int] = set()
    lock = threading.Lock()

    def get(url: str, byte_range: tuple[int, int], *, into: bytearray) -> memoryview:
        with lock:
            assert id(into) not in busy  # never two GETs into one buffer
            busy.add(id(into))
            buffers.add(id(into))
        into[:byte_range[1]] = pack[byte_range[0]:byte_range[0] + byte_range[1]]
        with lock:
            busy.discard(id(into))
        return memoryview(into)[:byte_range[1]]

    order = [r.chunk_id for r in refs]
    with ThreadPoolExecutor(4) as pool:
        fetch = RangedFetch(get, body_for(refs), order, pool, 4, lambda n: None)
        assert [fetch(c) for c in order] == list(blobs.values())
    assert len(buffers) <= 4
    assert fetch._live == {} and fetch._bufs == {}


def test_small_ranges_take_no_pooled_buffer() -> None:
    """Ranges under half a READ_SPAN (a file's end, around an edit) are read
    as bytes of their own size, so many of them never hold 8 MiB each."""
    blobs = {f"{i:064x}": os.urandom(2000) for i in range(10)}
    pack, refs = bytearray(), []
    for cid, blob in blobs.items():
        pack += bytes(READ_GAP + 1)
        refs.append(P.BlobRef(cid, len(pack), len(blob)))
        pack += blob
    kinds: list[bool] = []

    def get(url: str, byte_range: tuple[int, int], **kw: Any) -> bytes:
        kinds.append("into" in kw)
        return bytes(pack[byte_range[0]:byte_range[0] + byte_range[1]])

    order = [r.chunk_id for r in refs]
    with ThreadPoolExecutor(4) as pool:
        fetch = RangedFetch(get, body_for(refs), order, pool, 8, lambda n: None)
        assert [fetch(c) for c in order] == list(blobs.values())
    assert kinds == [False] * 10 and fetch._free == []


def test_a_range_the_server_cuts_short_or_a_withheld_chunk_fails() -> None:
    ref = P.BlobRef("a" * 64, 5, 100)
    with ThreadPoolExecutor(1) as pool:
        fetch = RangedFetch(lambda url, r=None, into=None: b"short", body_for([ref]),
                            [ref.chunk_id],
                            pool, 2, lambda n: None)
        with pytest.raises(IntegrityError):
            fetch(ref.chunk_id)
    with pytest.raises(IntegrityError):
        read_plan(body_for([ref]), ["b" * 64])
    with pytest.raises(IntegrityError):  # a pack the body has no URL for
        read_plan({"chunks": body_for([ref])["chunks"]}, [ref.chunk_id])


class PackServer:
    """Packs only: chunks count as stored once a batch naming their pack
    commits (as the server's chunk index does); the Nth pack PUT can fail."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.committed: set[str] = set()
        self.pack_puts: list[str] = []
        self.fail_at: int | None = None

    def missing_chunks(self, ids: list[str]) -> list[str]:
        return [c for c in ids if c not in self.committed]

    def create_batch(self, entries: list[Any], packs: list[Any] | None = None,
                     bundle_sha256: str | None = None) -> Any:
        self.entries, self.declared = entries, packs or []
        return {"batch_id": "b", "bundle_url": "bundle", "chunk_urls": {},
                "chunk_headers": {"If-None-Match": "*"},
                "pack_urls": {p["pack_id"]: f"pack:{p['pack_id']}" for p in self.declared}}

    def put_blob(self, url: str, blob: Any, headers: Any = None) -> None:
        if url.startswith("pack:"):
            self.pack_puts.append(url[5:])
            if len(self.pack_puts) == self.fail_at:
                from sealsync_client.api import ApiError
                raise ApiError("the network went away")
            self.stored[url[5:]] = bytes(blob)

    def wait_batch(self, batch_id: str) -> Any:
        for p in self.declared:
            assert p["pack_id"] in self.stored, "a declared pack never arrived"
            self.committed |= {b["chunk"] for b in p["blobs"]}
        return {"batch_id": batch_id, "status": "finished",
                "entries": [{"file_id": e["file_id"], "status": "accepted", "revision": 1}
                            for e in self.entries]}


class Remembered:
    def __init__(self) -> None:
        self.packs: dict[str, Any] = {}

    def sent_packs(self) -> list[Any]:
        return list(self.packs.values())

    def add_sent_pack(self, declaration: Any) -> None:
        self.packs[declaration["pack_id"]] = declaration

    def drop_sent_packs(self, pack_ids: Any) -> None:
        for p in pack_ids:
            self.packs.pop(p, None)


def test_an_interrupted_upload_resends_only_the_packs_that_did_not_land(
        tmp_path: Path) -> None:
    from sealsync_client.api import ApiError
    from sealsync_client.transfer import Transfer

    from tests.client.test_transfer import sign

    (tmp_path / "big.bin").write_bytes(os.urandom(30 * MiB))
    server, memory = PackServer(), Remembered()
    t = Transfer(server, RING, USER, "test", sign=sign, sent_packs=memory)  # type: ignore[arg-type]
    server.fail_at = 3
    with pytest.raises(ApiError):
        t.upload(tmp_path, "big.bin", "f" * 32, 0)
    landed = dict(memory.packs)
    assert landed and set(landed) <= set(server.stored)
    first_round = {b["chunk"] for p in server.declared for b in p["blobs"]}
    server.fail_at = None
    puts_before = len(server.pack_puts)
    assert t.upload(tmp_path, "big.bin", "f" * 32, 0)["status"] == "accepted"
    again = server.pack_puts[puts_before:]
    assert not set(again) & set(landed)  # a pack that landed is never PUT again
    assert set(landed) <= {p["pack_id"] for p in server.declared}  # declared again instead
    resent = {b["chunk"] for p in server.declared if p["pack_id"] in again for b in p["blobs"]}
    assert not resent & {b["chunk"] for p in landed.values() for b in p["blobs"]}
    assert server.committed == first_round  # every chunk of the file is stored
    assert memory.packs == {}  # all committed: nothing left to remember


def test_the_requests_carry_sealed_lengths_never_plaintext_ones(tmp_path: Path) -> None:
    from sealsync_client.transfer import Transfer

    from tests.client.test_transfer import sign

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(5 * MiB))
    server = PackServer()
    Transfer(server, RING, USER, "t", sign=sign).upload(  # type: ignore[arg-type]
        tmp_path, "big.bin", "f" * 32, 0)
    plain = {s.size for s in spans_of(path)}
    sizes = [c["size"] for e in server.entries for c in e["chunks"]]
    lengths = [b["length"] for p in server.declared for b in p["blobs"]]
    assert sorted(sizes) == sorted(lengths) == sorted(crypto.sealed_len(n) for n in plain)
    assert not plain & {*sizes, *lengths}
    for p in server.declared:  # blobs in chunk-id order: no file order
        assert [b["chunk"] for b in p["blobs"]] == sorted(b["chunk"] for b in p["blobs"])


def test_a_failed_pack_leaves_no_worker_writing_into_its_reused_buffer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """send_packs reuses a pack's buffer for a later pack once seal_pack
    returns. When one chunk of a pack failed (its file changed), seal_pack
    raised at once while other workers were still sealing that pack's
    chunks: they then wrote their envelopes into the buffer the next pack
    was being sealed in, at the failed pack's offsets, and the next pack
    went up with broken blobs (a committed version no device could
    download). Found by editing a file during `sealsync sync`."""
    fa, fb = tmp_path / "a", tmp_path / "b"
    fa.write_bytes(os.urandom(3 * MiB))
    fb.write_bytes(os.urandom(3 * MiB))
    spans_a, spans_b = spans_of(fa), spans_of(fb)
    [plan_a] = plan_packs([Source("a", fa, s) for s in spans_a], {s.id for s in spans_a})
    [plan_b] = plan_packs([Source("b", fb, s) for s in spans_b], {s.id for s in spans_b})
    first = min(spans_a, key=lambda s: s.id)  # the first blob a worker takes
    with open(fa, "r+b") as f:  # the file changes under that chunk only
        f.seek(first.offset)
        f.write(os.urandom(16))
    real = crypto.seal_into

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # still sealing when another chunk of the pack fails
        return real(*args, **kwargs)

    monkeypatch.setattr(crypto, "seal_into", slow)
    buf = bytearray(max(plan_a.layout.size, plan_b.layout.size))
    with ThreadPoolExecutor(4) as pool:
        with pytest.raises(PackFailed):
            seal_pack(RING, USER, plan_a, buf, plain, pool)
        monkeypatch.setattr(crypto, "seal_into", real)
        view = seal_pack(RING, USER, plan_b, buf, plain, pool)  # the buffer, reused
        time.sleep(0.6)  # any worker of the failed pack has finished by now
        packed = bytes(view)
    data = fb.read_bytes()
    for s in spans_b:
        ref = P.open_pack(RING, USER, plan_b.pack_id, packed).find(s.id)
        assert ref is not None
        got = open_chunk(RING, USER, s.id, s.size, P.blob_at(packed, ref))
        assert got == data[s.offset:s.offset + s.size]
