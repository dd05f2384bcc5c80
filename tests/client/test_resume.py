"""Downloads that resume from their part file, arrive sparse, and leave no
unverified file in place.

A download writes `dest.part` and renames it to `dest` once every chunk has
verified. A failed or killed attempt keeps the part file; the next attempt
re-hashes it chunk by chunk against the manifest's ids (never trusting local
bytes), keeps the verified prefix and fetches only the chunks after it.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sealsync_client import crypto
from sealsync_client.api import ApiError
from sealsync_client.download import Version
from sealsync_client.errors import IntegrityError
from sealsync_client.manifest import Manifest
from sealsync_client.pipeline import (
    BLOCK,
    decrypt_file,
    part_path,
    remove_stale_parts,
    write_sparse,
)
from sealsync_client.transfer import Transfer

from .test_transfer import FILE, RING, USER, FakeServer, MiB, sign, upload


class Server(FakeServer):
    """The upload fake plus presigned GETs, counted, one of which may fail."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[str] = []
        self.fail: str | None = None  # a chunk id whose GET fails
        self._lock = threading.Lock()

    def get_blob(self, url: str) -> bytes:
        cid = url.removeprefix("chunk:")
        with self._lock:
            self.gets.append(cid)
        if cid == self.fail:
            raise ApiError("storage refused a download (HTTP 503)", 503)
        return self.chunks[cid]


class Bars:
    """A progress factory that records every bar's total and updates."""

    def __init__(self) -> None:
        self.bars: list[tuple[int, list[int]]] = []

    @contextmanager
    def __call__(self, label: str, total: int) -> Iterator[Any]:
        steps: list[int] = []
        self.bars.append((total, steps))

        class Bar:
            def update(self, n: int) -> None:
                steps.append(n)

        yield Bar()


def publish(tmp_path: Path, server: Server, data: bytes, base: int = 0) -> Version:
    (tmp_path / "big.bin").write_bytes(data)
    manifest = upload(tmp_path, server, base)
    urls = [{"id": cid, "url": f"chunk:{cid}"} for cid in {r.id for r in manifest.chunks}]
    return Version(FILE, base + 1, {"revision": base + 1, "chunks": urls}, manifest)


def transfer(server: Server, progress: Bars | None = None) -> Transfer:
    return Transfer(server, RING, USER, "test", workers=4, progress=progress,  # type: ignore[arg-type]
                    sign=sign)


def ids(manifest: Manifest | None, start: int = 0) -> Counter[str]:
    assert manifest is not None
    return Counter(r.id for r in manifest.chunks[start:])


def prefix_len(manifest: Manifest | None, count: int) -> int:
    assert manifest is not None
    return sum(r.size for r in manifest.chunks[:count])


def fail_at(tmp_path: Path, server: Server, v: Version, index: int) -> Path:
    """Run a download that fails on chunk `index`; the destination."""
    assert v.manifest is not None
    dest = tmp_path / "tmp" / FILE
    server.fail = v.manifest.chunks[index].id
    with pytest.raises(ApiError):
        transfer(server).download(v, dest)
    server.fail = None
    server.gets.clear()
    return dest


def test_a_failed_download_keeps_its_part_and_the_next_fetches_only_the_rest(
        tmp_path: Path) -> None:
    server = Server()
    data = os.urandom(8 * MiB)
    v = publish(tmp_path, server, data)
    assert v.manifest is not None and len(v.manifest.chunks) >= 12
    dest = fail_at(tmp_path, server, v, 7)
    part = part_path(dest)
    assert part == dest.with_name(FILE + ".part")
    assert not dest.exists(), "an unverified file never takes the destination's place"
    assert part.stat().st_size == prefix_len(v.manifest, 7)

    bars = Bars()
    transfer(server, bars).download(v, dest)
    assert Counter(server.gets) == ids(v.manifest, 7)  # not one chunk twice
    assert dest.read_bytes() == data and not part.exists()
    assert dest.stat().st_mtime_ns == v.manifest.mtime_ns
    assert dest.stat().st_mode & 0o777 == v.manifest.mode & 0o777
    # The resumed bytes count as done at once, then each fetched envelope.
    (total, steps), = bars.bars
    assert steps[0] == sum(crypto.sealed_len(r.size) for r in v.manifest.chunks[:7])
    assert sum(steps) == total and len(steps) == 1 + len(v.manifest.chunks) - 7


def test_a_download_from_scratch_reports_no_resumed_bytes(tmp_path: Path) -> None:
    server = Server()
    data = os.urandom(3 * MiB)
    v = publish(tmp_path, server, data)
    bars = Bars()
    dest = tmp_path / "out"
    transfer(server, bars).download(v, dest)
    (total, steps), = bars.bars
    assert Counter(server.gets) == ids(v.manifest) and len(steps) == len(server.gets)
    assert sum(steps) == total and dest.read_bytes() == data


def _killed_download(manifest: Manifest, store: dict[str, bytes], dest: Path,
                     index: int) -> None:
    assert manifest.chunks
    doomed = manifest.chunks[index].id

    def fetch(cid: str) -> bytes:
        if cid == doomed:
            os.kill(os.getpid(), signal.SIGKILL)  # no except, no finally runs
        return store[cid]

    decrypt_file(manifest, RING, USER, fetch, dest)


@pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGKILL")
def test_a_killed_download_keeps_its_part_and_resumes(tmp_path: Path) -> None:
    server = Server()
    data = os.urandom(6 * MiB)
    v = publish(tmp_path, server, data)
    assert v.manifest is not None
    dest = tmp_path / "tmp" / FILE
    dest.parent.mkdir()
    child = multiprocessing.get_context("fork").Process(
        target=_killed_download, args=(v.manifest, server.chunks, dest, 5))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert not dest.exists() and part_path(dest).stat().st_size == prefix_len(v.manifest, 5)
    transfer(server).download(v, dest)
    assert Counter(server.gets) == ids(v.manifest, 5)
    assert dest.read_bytes() == data and not part_path(dest).exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "zero"])
def test_a_damaged_prefix_is_found_by_its_hash_and_fetched_again(
        tmp_path: Path, damage: str) -> None:
    server = Server()
    data = os.urandom(8 * MiB)
    v = publish(tmp_path, server, data)
    dest = fail_at(tmp_path, server, v, 9)
    part = part_path(dest)
    at = prefix_len(v.manifest, 3) + 12345  # inside chunk 3
    with part.open("r+b") as f:
        if damage == "flip":  # same size: only the re-hash can tell
            f.seek(at)
            byte = f.read(1)
            f.seek(at)
            f.write(bytes([byte[0] ^ 1]))
        elif damage == "truncate":
            f.truncate(at)
        else:  # a hole where data should be, as a crash before writeback may leave
            f.seek(at - 12345)
            f.write(bytes(BLOCK))
    transfer(server).download(v, dest)
    assert Counter(server.gets) == ids(v.manifest, 3)
    assert dest.read_bytes() == data


def test_a_part_of_an_older_version_is_reused_up_to_the_first_differing_chunk(
        tmp_path: Path) -> None:
    server = Server()
    old = bytearray(os.urandom(16 * MiB))
    v1 = publish(tmp_path, server, bytes(old))
    assert v1.manifest is not None
    dest = fail_at(tmp_path, server, v1, len(v1.manifest.chunks) - 1)
    new = bytearray(old)
    new[8 * MiB:8 * MiB + 4096] = os.urandom(4096)
    v2 = publish(tmp_path, server, bytes(new), base=1)
    assert v2.manifest is not None
    same = next(i for i, (a, b) in enumerate(zip(v1.manifest.chunks, v2.manifest.chunks,
                                                 strict=False)) if a != b)
    assert same >= 10
    transfer(server).download(v2, dest)
    assert Counter(server.gets) == ids(v2.manifest, same)
    assert dest.read_bytes() == new


def test_a_part_of_another_file_entirely_is_discarded(tmp_path: Path) -> None:
    server = Server()
    data = os.urandom(2 * MiB)
    v = publish(tmp_path, server, data)
    dest = tmp_path / "out"
    part_path(dest).write_bytes(os.urandom(5 * MiB))
    transfer(server).download(v, dest)
    assert Counter(server.gets) == ids(v.manifest)
    assert dest.read_bytes() == data


def sparse_supported(folder: Path) -> bool:
    probe = folder / "probe"
    with probe.open("wb") as f:
        f.truncate(16 * MiB)
    try:
        return probe.stat().st_blocks * 512 < MiB
    finally:
        probe.unlink()


@pytest.mark.skipif(not hasattr(os.stat_result, "st_blocks"), reason="no st_blocks")
def test_zeros_become_holes_and_the_file_is_byte_identical(tmp_path: Path) -> None:
    if not sparse_supported(tmp_path):
        pytest.skip("this filesystem has no sparse files")
    server = Server()
    data = bytearray(48 * MiB)  # a disk image: mostly hole, ending in one
    data[5 * MiB + 77:5 * MiB + 77 + 300_000] = os.urandom(300_000)
    data[20 * MiB + 5:20 * MiB + 25] = b"\x01" * 20  # 20 bytes in a zero chunk
    data[30 * MiB:31 * MiB] = os.urandom(MiB)
    v = publish(tmp_path, server, bytes(data))
    dest = tmp_path / "out"
    transfer(server).download(v, dest)
    assert dest.stat().st_size == len(data)
    assert dest.read_bytes() == data
    assert dest.stat().st_blocks * 512 < 4 * MiB  # ~1.3 MiB of data in 48 MiB


def test_a_resumed_sparse_download_is_byte_identical(tmp_path: Path) -> None:
    server = Server()
    data = bytearray(12 * MiB)
    for at in range(0, len(data), 3 * MiB):
        data[at + 1000:at + 1000 + 700_000] = os.urandom(700_000)
    v = publish(tmp_path, server, bytes(data))
    assert v.manifest is not None
    dest = fail_at(tmp_path, server, v, len(v.manifest.chunks) // 2)
    transfer(server).download(v, dest)
    assert dest.read_bytes() == data


def test_write_sparse_at_unaligned_offsets_skips_only_whole_zero_blocks(
        tmp_path: Path) -> None:
    rng = random.Random(7)
    expected = bytearray()
    for _ in range(60):
        n = rng.choice([1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 10_000, 40_000])
        expected += bytes(n) if rng.random() < 0.5 else rng.randbytes(n)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    written = 0
    try:
        at = 0
        while at < len(expected):
            n = rng.randint(1, 50_000)
            written += write_sparse(fd, bytes(expected[at:at + n]), at)
            at += n
        os.ftruncate(fd, len(expected))
    finally:
        os.close(fd)
    assert path.read_bytes() == expected
    assert written < len(expected)
    # Only whole blocks aligned to file offsets are skipped: the ragged ends
    # of a zero run are written.
    assert write_sparse_count(tmp_path, bytes(5 * BLOCK), 100) == BLOCK
    assert write_sparse_count(tmp_path, bytes(BLOCK), 100) == BLOCK
    assert write_sparse_count(tmp_path, bytes(2 * BLOCK), 100) == BLOCK
    assert write_sparse_count(tmp_path, bytes(2 * BLOCK), 0) == 0


def write_sparse_count(folder: Path, data: bytes, offset: int) -> int:
    fd = os.open(folder / "g", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        return write_sparse(fd, data, offset)
    finally:
        os.close(fd)


@pytest.mark.parametrize("size", [0, 1, 16 * 1024])
def test_an_inline_file_overwrites_any_part_and_needs_no_get(tmp_path: Path, size: int) -> None:
    server = Server()
    data = os.urandom(size)
    v = publish(tmp_path, server, data)
    assert v.manifest is not None and v.manifest.inline == data
    dest = tmp_path / "out"
    part_path(dest).write_bytes(os.urandom(100_000))  # a stale, longer part
    transfer(server).download(v, dest)
    assert server.gets == [] and dest.read_bytes() == data
    assert not part_path(dest).exists()


def test_a_rejected_chunk_keeps_the_verified_prefix_but_never_the_destination(
        tmp_path: Path) -> None:
    server = Server()
    data = os.urandom(4 * MiB)
    v = publish(tmp_path, server, data)
    assert v.manifest is not None
    dest = tmp_path / "out"
    dest.write_bytes(b"my local file")
    bad = v.manifest.chunks[4].id
    good = server.chunks[bad]
    server.chunks[bad] = good[:-1] + bytes([good[-1] ^ 1])
    with pytest.raises(IntegrityError):
        transfer(server).download(v, dest)
    assert dest.read_bytes() == b"my local file"
    assert part_path(dest).stat().st_size == prefix_len(v.manifest, 4)
    server.chunks[bad] = good
    server.gets.clear()
    transfer(server).download(v, dest)
    assert Counter(server.gets) == ids(v.manifest, 4) and dest.read_bytes() == data


def test_remove_stale_parts_spares_the_kept_destinations(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    for name in ("a.part", "b.part", "b", "c.part.x", "notes.txt"):
        (tmp / name).write_bytes(b"x")
    (tmp / "d.part").mkdir()
    removed = remove_stale_parts(tmp, keep={tmp / "b", tmp / "elsewhere"})
    assert removed == [tmp / "a.part"]
    assert sorted(os.listdir(tmp)) == ["b", "b.part", "c.part.x", "d.part", "notes.txt"]
    assert remove_stale_parts(tmp) == [tmp / "b.part"]
    assert remove_stale_parts(tmp_path / "missing") == []


def test_a_complete_part_is_verified_and_renamed_without_a_get(tmp_path: Path) -> None:
    server = Server()  # e.g. killed between the last write and the rename
    data = os.urandom(3 * MiB)
    v = publish(tmp_path, server, data)
    dest = tmp_path / "out"
    part_path(dest).write_bytes(data + b"trailing junk")
    bars = Bars()
    transfer(server, bars).download(v, dest)
    assert server.gets == [] and dest.read_bytes() == data
    (total, steps), = bars.bars
    assert steps == [total]
