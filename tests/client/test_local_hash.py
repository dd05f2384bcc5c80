"""A new file's fingerprint hash is taken by its upload's own read
(fingerprint.HashingReader inside Transfer.prepare), of exactly the bytes
chunked, instead of by a read of its own before it."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from sealsync_client import transfer as transfer_mod
from sealsync_client.chunking import Chunker
from sealsync_client.fingerprint import HashingReader, hash_file, local_hasher
from sealsync_client.pipeline import chunk_spans
from sealsync_client.transfer import Transfer

from tests.client.test_transfer import FILE, RING, USER, FakeServer, sign

MiB = 1024 * 1024


class Trickle(io.RawIOBase):
    """A raw stream that returns at most `most` bytes a read (short reads)."""

    def __init__(self, data: bytes, most: int) -> None:
        self.src, self.most = io.BytesIO(data), most

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        return self.src.readinto(memoryview(b)[:self.most])


def digest(data: bytes) -> str:
    h = local_hasher()
    h.update(data)
    return str(h.hexdigest())


@pytest.mark.parametrize("helper", [True, False], ids=["helper", "in-place"])
@pytest.mark.parametrize("most", [1 << 30, 300_001, 4096], ids=["whole", "odd", "small"])
def test_the_chunker_gets_the_same_bytes_and_the_hash_is_of_them_all(
        most: int, helper: bool) -> None:
    data = os.urandom(5 * MiB + 12345)
    reader = HashingReader(Trickle(data, most), helper=helper)
    try:
        spans = chunk_spans(reader, RING, Chunker(RING.chunker))
        assert reader.hexdigest() == digest(data)
    finally:
        reader.close()
    assert spans == chunk_spans(io.BytesIO(data), RING, Chunker(RING.chunker))
    assert sum(s.size for s in spans) == len(data)


@pytest.mark.parametrize("size", [0, 10, 16 * 1024, 16 * 1024 + 1, 3 * MiB, 9 * MiB])
def test_prepare_takes_the_fingerprint_hash_only_when_asked(tmp_path: Path, size: int) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(size))
    t = Transfer(FakeServer(), RING, USER, "test", sign=sign)  # type: ignore[arg-type]
    asked = t.prepare(tmp_path, "f.bin", FILE, 0, local_hash=True)
    assert asked.digest == hash_file(tmp_path / "f.bin")
    assert t.prepare(tmp_path, "f.bin", FILE, 0).digest is None
    assert [s.id for s in asked.spans] == [s.id for s in t.prepare(tmp_path, "f.bin",
                                                                   FILE, 0).spans]


def test_a_file_chunked_twice_for_a_higher_tier_is_hashed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.bin").write_bytes(os.urandom(12 * MiB))
    monkeypatch.setattr(transfer_mod, "MAX_CHUNKS", 16)
    t = Transfer(FakeServer(), RING, USER, "test", sign=sign)  # type: ignore[arg-type]
    p = t.prepare(tmp_path, "f.bin", FILE, 0, local_hash=True)
    assert len(p.spans) <= 16 and p.digest == hash_file(tmp_path / "f.bin")
