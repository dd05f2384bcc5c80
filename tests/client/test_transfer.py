"""Uploads: hash first, then read back, seal and PUT only what the server lacks.

The server here is an in-process fake of the three calls an upload makes; it
stores what is PUT and answers POST /v1/uploads like chalicelib/api.py: a
presigned URL for each chunk id it does not hold yet.
"""
from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from sealsync_client import (
    AccountKeys,
    Manifest,
    ManifestPlace,
    crypto,
    open_chunk,
    open_manifest,
    seal_chunk,
)
from sealsync_client import transfer as transfer_mod
from sealsync_client.chunking import MAX_SIZE, Chunker
from sealsync_client.errors import IntegrityError
from sealsync_client.history import ZERO, sign_linked
from sealsync_client.manifest import Link
from sealsync_client.pipeline import FileChanged, Span, chunk_spans, seal_span
from sealsync_client.transfer import Buffers, Transfer

USER = "0123456789abcdef0123456789abcdef"
FILE = "fedcba9876543210fedcba9876543210"
RING = AccountKeys(bytes(range(32))).root_keyring()
SIGNER = AccountKeys(bytes(range(32))).signing_key()


def sign(place: ManifestPlace, manifest: Manifest) -> Manifest:
    return sign_linked(SIGNER, RING, place, manifest, Link(ZERO, "ab" * 16, 1, 0, ZERO))
MiB = 1024 * 1024


class FakeServer:
    """create_upload / put_blob / wait_upload, keeping every PUT."""

    def __init__(self) -> None:
        self.chunks: dict[str, bytes] = {}
        self.manifests: list[bytes] = []
        self.puts: list[str] = []
        self.before_puts: Any = None  # called once the ticket is out (a racing editor)
        self.packs: dict[str, bytes] = {}
        self.declared: dict[str, dict[str, Any]] = {}
        self.asked: list[list[str]] = []

    def missing_chunks(self, chunk_ids: list[str]) -> list[str]:
        self.asked.append(chunk_ids)
        return [c for c in chunk_ids if c not in self.chunks]

    def create_upload(self, file_id: str, base: int, manifest_size: int,
                      chunks: list[tuple[str, int]]) -> dict[str, Any]:
        need = {cid: f"chunk:{cid}" for cid, _ in chunks if cid not in self.chunks}
        if self.before_puts is not None:
            self.before_puts()
        return {"upload_id": "u", "manifest_url": "manifest", "chunk_urls": need,
                "chunk_headers": {"If-None-Match": "*"}}

    def put_blob(self, url: str, blob: bytes | memoryview,
                 headers: dict[str, str] | None = None) -> None:
        self.puts.append(url)
        if url == "manifest":  # the bundle: create-only, bound to the digest declared
            self.manifests.append(bytes(blob))
            digest = base64.b64encode(hashlib.sha256(blob).digest()).decode()
            assert headers == {"If-None-Match": "*", "x-amz-checksum-sha256": digest}
            assert self.bundle_sha256 == hashlib.sha256(blob).hexdigest()
        elif url.startswith("pack:"):  # a pack: its blobs are the chunks now stored
            assert headers == {"If-None-Match": "*"}
            pid = url.removeprefix("pack:")
            self.packs[pid] = bytes(blob)
            assert len(blob) == self.declared[pid]["size"]
            for b in self.declared[pid]["blobs"]:
                self.chunks[b["chunk"]] = bytes(blob[b["offset"]:b["offset"] + b["length"]])
        else:
            assert headers == {"If-None-Match": "*"}
            self.chunks[url.removeprefix("chunk:")] = bytes(blob)

    def wait_upload(self, upload_id: str) -> dict[str, Any]:
        return {"status": "accepted", "revision": 1}

    def create_batch(self, entries: list[dict[str, Any]],
                     packs: list[dict[str, Any]] | None = None,
                     bundle_sha256: str | None = None) -> dict[str, Any]:
        self.entries, self.bundle_sha256 = entries, bundle_sha256
        assert bundle_sha256 is not None
        put_headers = {"If-None-Match": "*", "x-amz-checksum-sha256": base64.b64encode(
            bytes.fromhex(bundle_sha256)).decode()}
        packed = {b["chunk"] for p in packs or [] for b in p["blobs"]}
        self.declared.update({p["pack_id"]: p for p in packs or []})
        chunks = [(c["id"], c["size"]) for e in entries for c in e["chunks"]
                  if c["id"] not in packed]
        ticket = self.create_upload("", 0, 0, chunks)
        return {"batch_id": "b", "bundle_url": ticket["manifest_url"],
                "bundle_headers": put_headers,
                "chunk_urls": ticket["chunk_urls"], "chunk_headers": ticket["chunk_headers"],
                "pack_urls": {p["pack_id"]: f"pack:{p['pack_id']}" for p in packs or []}}

    def wait_batch(self, batch_id: str) -> dict[str, Any]:
        return {"batch_id": batch_id, "status": "finished",
                "entries": [{"file_id": e["file_id"], "status": "accepted",
                             "revision": e["base_revision"] + 1} for e in self.entries]}


def upload(tmp_path: Path, server: FakeServer, base: int = 0) -> Manifest:
    t = Transfer(server, RING, USER, "test", sign=sign)  # type: ignore[arg-type]
    assert t.upload(tmp_path, "big.bin", FILE, base)["status"] == "accepted"
    place = ManifestPlace.for_upload(USER, FILE, base)
    return open_manifest(RING, place, server.manifests[-1])


def test_an_upload_round_trips_and_the_manifest_is_put_last(tmp_path: Path) -> None:
    data = os.urandom(6 * MiB + 17)
    (tmp_path / "big.bin").write_bytes(data)
    server = FakeServer()
    manifest = upload(tmp_path, server)
    assert server.puts[-1] == "manifest" and server.puts.count("manifest") == 1
    assert len(manifest.chunks) >= 10
    restored = b"".join(open_chunk(RING, USER, r.id, r.size, server.chunks[r.id])
                        for r in manifest.chunks)
    assert restored == data
    for r in manifest.chunks:
        assert len(server.chunks[r.id]) == crypto.sealed_len(r.size)


@pytest.mark.parametrize(("size", "inline"), [(1, True), (16 * 1024, True),
                                               (16 * 1024 + 1, False)])
def test_files_up_to_16_kib_ride_in_the_manifest_with_one_put(
        tmp_path: Path, size: int, inline: bool) -> None:
    data = os.urandom(size)
    (tmp_path / "big.bin").write_bytes(data)
    server = FakeServer()
    manifest = upload(tmp_path, server)
    assert (server.puts == ["manifest"]) is inline
    assert (manifest.inline == data) is inline
    assert (len(manifest.chunks) == 0) is inline


def spy_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets of every chunk read back for sealing."""
    reads: list[int] = []
    real = os.preadv

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        reads.append(offset)
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    return reads


def test_a_small_overwrite_reads_seals_and_sends_only_the_chunks_around_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.bin"
    data = bytearray(os.urandom(16 * MiB))
    path.write_bytes(data)
    server = FakeServer()
    first = upload(tmp_path, server)
    server.puts.clear()
    data[8 * MiB:8 * MiB + 4096] = os.urandom(4096)
    path.write_bytes(data)
    reads = spy_reads(monkeypatch)
    second = upload(tmp_path, server, base=1)

    new = [r for r in second.chunks if r.id not in {c.id for c in first.chunks}]
    assert 1 <= len(new) <= 4
    [pack_url] = server.puts[:-1]  # the new chunks, in one pack
    packed = server.declared[pack_url.removeprefix("pack:")]["blobs"]
    assert sorted(b["chunk"] for b in packed) == sorted({r.id for r in new})
    starts: dict[str, int] = {}
    at = 0
    for r in second.chunks:
        starts.setdefault(r.id, at)
        at += r.size
    assert sorted(reads) == sorted(starts[r.id] for r in new)  # nothing else read back
    assert sum(r.size for r in new) <= 4 * MAX_SIZE
    restored = b"".join(open_chunk(RING, USER, r.id, r.size, server.chunks[r.id])
                        for r in second.chunks)
    assert restored == data


def test_nothing_is_read_back_when_the_server_has_every_chunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * MiB))
    server = FakeServer()
    upload(tmp_path, server)
    reads = spy_reads(monkeypatch)
    server.puts.clear()
    upload(tmp_path, server, base=1)  # e.g. a rename: the same content again
    assert server.puts == ["manifest"] and reads == []


def test_an_edit_racing_the_upload_fails_it_before_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(4 * MiB))
    server = FakeServer()

    def edit() -> None:  # same size, other bytes: only the re-hash can tell
        with path.open("r+b") as f:
            f.seek(MiB)
            f.write(os.urandom(4096))

    server.before_puts = edit
    with pytest.raises(FileChanged):
        upload(tmp_path, server)
    assert server.manifests == []


def test_a_touch_during_the_upload_commits_the_version_as_it_was_read(
        tmp_path: Path) -> None:
    """The manifest describes the bytes as read and every chunk re-hashed to
    its id, so the version is whole; the next pass sees the new mtime."""
    path = tmp_path / "big.bin"
    data = os.urandom(2 * MiB)
    path.write_bytes(data)
    server = FakeServer()
    server.before_puts = lambda: os.utime(path, ns=(1, 1))
    manifest = upload(tmp_path, server)
    assert manifest.mtime_ns != 1 and manifest.size == len(data)


def test_the_server_never_sees_a_file_s_chunk_order(tmp_path: Path) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(6 * MiB))
    server = FakeServer()
    manifest = upload(tmp_path, server)
    sent = [c["id"] for c in server.entries[0]["chunks"]]
    assert sent == sorted(r.id for r in manifest.chunks)
    assert sent != [r.id for r in manifest.chunks]  # file order differs (6+ random ids)


def test_too_many_chunks_moves_the_file_up_a_tier(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(12 * MiB))
    monkeypatch.setattr(transfer_mod, "MAX_CHUNKS", 16)
    manifest = upload(tmp_path, FakeServer())
    assert len(manifest.chunks) <= 16
    assert max(r.size for r in manifest.chunks) > MAX_SIZE  # tier 1 or above


@pytest.mark.parametrize("pread", [True, False], ids=["preadv", "seek-and-read"])
def test_seal_span_matches_seal_chunk_and_checks_the_bytes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pread: bool) -> None:
    if not pread:  # as on Windows
        monkeypatch.delattr(os, "preadv")
    path = tmp_path / "f"
    data = os.urandom(2 * MiB)
    path.write_bytes(data)
    spans = chunk_spans(path, RING, Chunker(RING.chunker))
    salt = bytes(range(24))
    buf = bytearray(crypto.padded_len(MAX_SIZE))
    out = bytearray(crypto.sealed_len(MAX_SIZE))
    fd = os.open(path, os.O_RDONLY)
    try:
        for span in spans:
            env = bytes(seal_span(RING, USER, fd, span, buf, out, rand=lambda n: salt[:n]))
            chunk = data[span.offset:span.offset + span.size]
            assert seal_chunk(RING, USER, chunk, rand=lambda n: salt[:n]) == (span.id, env)
        with pytest.raises(FileChanged):
            seal_span(RING, USER, fd, Span(1, spans[0].size, spans[0].id), buf, out)
        with pytest.raises(FileChanged):  # past the end: a short read
            seal_span(RING, USER, fd, Span(len(data) - 10, 20, spans[0].id), buf, out)
    finally:
        os.close(fd)


def test_buffers_are_shared_bounded_and_grow_to_fit() -> None:
    pool = Buffers(2)
    with pool.take(1000) as a, pool.take(1000):
        assert len(a[0]) >= crypto.padded_len(1000) and len(a[1]) >= crypto.sealed_len(1000)
        third: list[int] = []
        waiter = threading.Thread(target=lambda: third.append(len(pool.take(10).__enter__()[0])))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # both pairs are out: the third caller waits
    waiter.join(5)
    assert third and not waiter.is_alive()
    with pool.take(MAX_SIZE) as big:
        assert len(big[0]) >= crypto.padded_len(MAX_SIZE)


def test_a_server_answering_for_other_entries_ends_the_pass(tmp_path: Path) -> None:
    """The verdicts are matched to entries by position: a server that
    reorders or swaps them is refused, never believed (outbox keeps it fatal)."""
    from sealsync_client import outbox

    for name in ("a", "b"):
        (tmp_path / name).write_bytes(name.encode())
    server = FakeServer()
    real = server.wait_batch
    server.wait_batch = lambda batch_id: {**real(batch_id),  # type: ignore[method-assign]
                                          "entries": real(batch_id)["entries"][::-1]}
    t = Transfer(server, RING, USER, "test", sign=sign)  # type: ignore[arg-type]
    work = [(name, lambda n=name: t.prepare(tmp_path, n, n * 32, 0)) for name in ("a", "b")]
    with pytest.raises(IntegrityError):
        list(outbox.send(t, work, 2))


class Pipeline:
    """A transfer that records outbox's calls: which batch is sent, which is
    awaited, in order; `fail_send` makes the send of that batch raise."""

    def __init__(self, fail_send: dict[int, Exception] | None = None) -> None:
        self.log: list[tuple[str, int]] = []
        self.fail_send = fail_send or {}

    def send_batch(self, items: list[transfer_mod.Prepared]) -> transfer_mod.SentBatch:
        n = sum(1 for op, _ in self.log if op == "send")
        self.log.append(("send", n))
        if n in self.fail_send:
            raise self.fail_send[n]
        return transfer_mod.SentBatch(str(n), items, {})

    def wait_for(self, sent: transfer_mod.SentBatch) -> list[dict[str, Any]]:
        self.log.append(("wait", int(sent.batch_id or -1)))
        return [{"file_id": it.file_id, "status": "accepted"} for it in sent.items]


def prepared(name: str) -> transfer_mod.Prepared:
    return transfer_mod.Prepared(name, name * 32, 0, b"m", False)


def test_a_batch_is_awaited_only_once_the_next_one_is_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelined by one: the server commits batch k while k + 1 is prepared
    and sent; every file is answered once, by its own batch."""
    from sealsync_client import outbox

    monkeypatch.setattr(outbox, "MAX_ENTRIES", 2)
    t = Pipeline()
    work = [(name, lambda n=name: prepared(n)) for name in "abcde"]
    answered = [pair for part in outbox.send(t, work, 2) for pair in part]  # type: ignore[arg-type]
    assert t.log == [("send", 0), ("send", 1), ("wait", 0), ("send", 2), ("wait", 1),
                     ("wait", 2)]
    assert [(k, r["file_id"]) for k, r in answered] == [(n, n * 32) for n in "abcde"]


def test_losing_the_server_mid_pipeline_settles_the_batch_in_flight_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The send of the next batch fails fatally: the batch already sent is
    still awaited and handed back before the pass ends; a batch refused as a
    whole is each of its files' error, and the pipeline goes on."""
    from sealsync_client import outbox
    from sealsync_client.api import ServerUnreachable

    monkeypatch.setattr(outbox, "MAX_ENTRIES", 2)
    refused = ValueError("413")
    t = Pipeline({1: refused, 3: ServerUnreachable("gone")})
    work = [(name, lambda n=name: prepared(n)) for name in "abcdefgh"]
    answered: list[tuple[str, Any]] = []
    with pytest.raises(ServerUnreachable):
        for part in outbox.send(t, work, 2):  # type: ignore[arg-type]
            answered += part
    assert t.log == [("send", 0), ("send", 1), ("send", 2), ("wait", 0), ("send", 3),
                     ("wait", 2)]
    assert [k for k, _ in answered] == list("cdabef")
    assert [r for k, r in answered if k in "cd"] == [refused, refused]


def test_over_quota_a_batch_sends_its_deletes_alone_and_goes_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """413 over_quota refuses the batch's uploads (each keeps OverQuota as
    its result); its deletes go again as a batch of their own, which the
    server always takes; later batches are still sent."""
    from sealsync_client import outbox
    from sealsync_client.api import OverQuota

    monkeypatch.setattr(outbox, "MAX_ENTRIES", 3)
    full = OverQuota("quota used up", 413, "over_quota")
    t = Pipeline({0: full, 2: full})
    sent: list[list[str]] = []
    send = t.send_batch

    def recording(items: list[transfer_mod.Prepared]) -> transfer_mod.SentBatch:
        sent.append([it.rel for it in items])
        return send(items)

    t.send_batch = recording  # type: ignore[method-assign]

    def item(name: str) -> transfer_mod.Prepared:
        return transfer_mod.Prepared(name, name * 32, 1, b"m", name.startswith("rm"))

    work = [(n, lambda n=n: item(n)) for n in ("up1", "rm1", "up2", "rm2", "rm3", "up3")]
    answered = dict(pair for part in outbox.send(t, work, 2) for pair in part)  # type: ignore[arg-type]
    assert sent == [["up1", "rm1", "up2"], ["rm1"], ["rm2", "rm3", "up3"], ["rm2", "rm3"]]
    assert answered["up1"] is full and answered["up2"] is full and answered["up3"] is full
    assert all(answered[n]["status"] == "accepted" for n in ("rm1", "rm2", "rm3"))
