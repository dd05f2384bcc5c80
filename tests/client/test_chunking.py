"""Content-defined chunking: keyed, local under edits, compiled, bounded in memory."""
from __future__ import annotations

import io
import os
import statistics
import tracemalloc
from pathlib import Path

import pyfastcdc
from sealsync_client import AccountKeys, encrypt_file
from sealsync_client.chunking import MAX_SIZE, MIN_SIZE, TOP_TIER, Chunker, tier_for

RING = AccountKeys(bytes(range(32))).root_keyring()
OTHER = AccountKeys(bytes(32)).root_keyring()
MiB = 1024 * 1024


class LazyStream(io.RawIOBase):
    """`size` bytes of varied content made on demand, never all in memory."""

    def __init__(self, size: int) -> None:
        self.left, self.pool, self.turn = size, os.urandom(MiB + 4096), 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        n = min(len(target), self.left, MiB)
        start = (self.turn * 2654435761) % 4096
        target[:n] = self.pool[start:start + n]
        self.turn, self.left = self.turn + 1, self.left - n
        return n


def test_the_compiled_core_is_in_use() -> None:
    assert type(Chunker(RING.chunker)._cdc).__module__ == "pyfastcdc.cy.fastcdc"
    assert pyfastcdc.FastCDC.__module__ == "pyfastcdc.cy.fastcdc"


def test_tier_zero_chunks_stay_within_bounds_and_average_about_300_kib() -> None:
    data = os.urandom(48 * MiB)
    sizes = [n for _, n in Chunker(RING.chunker).boundaries(data)]
    assert sum(sizes) == len(data)
    assert all(MIN_SIZE <= n <= MAX_SIZE for n in sizes[:-1])
    mean = statistics.mean(sizes[:-1])
    assert 250 * 1024 <= mean <= 360 * 1024
    # so a 1 GiB file fits the server's 4096 chunks with room to spare
    assert 1024 * MiB / mean < 3800


def test_each_tier_doubles_the_sizes_of_the_one_below() -> None:
    data = os.urandom(48 * MiB)
    means = []
    for tier in range(3):
        chunker = Chunker(RING.chunker, tier)
        assert (chunker.min_size, chunker.max_size) == (MIN_SIZE << tier, MAX_SIZE << tier)
        sizes = [n for _, n in chunker.boundaries(data)]
        assert sum(sizes) == len(data)
        assert all(chunker.min_size <= n <= chunker.max_size for n in sizes[:-1])
        means.append(statistics.mean(sizes[:-1]))
    assert 1.6 < means[1] / means[0] < 2.5 and 1.6 < means[2] / means[1] < 2.5


def test_the_tier_follows_the_file_size() -> None:
    gib = 1024 * MiB
    assert [tier_for(n) for n in (0, 5000, gib, gib + 1, 2 * gib, 2 * gib + 1, 4 * gib,
                                  8 * gib, 100 * gib)] == [0, 0, 0, 1, 1, 2, 2, 3, TOP_TIER]
    # the top tier's biggest chunk still seals under the server's 16 MiB object cap
    from sealsync_client.crypto import sealed_len
    assert sealed_len(Chunker(RING.chunker, TOP_TIER).max_size) <= 16 * MiB


def test_an_insertion_moves_boundaries_only_locally() -> None:
    data = os.urandom(32 * MiB)
    edited = data[:16 * MiB] + b"inserted in the middle" * 50 + data[16 * MiB:]
    chunker = Chunker(RING.chunker)

    def ids(buf: bytes) -> list[str]:
        return [RING.chunk_id_of(view) for _, view in chunker.split(io.BytesIO(buf))]

    before, after = ids(data), ids(edited)
    unchanged = set(before) & set(after)
    assert len(before) >= 80
    assert len(unchanged) >= len(before) - 4  # only the chunk(s) around the edit change
    assert before[0] == after[0] and before[-1] == after[-1]


def test_different_keys_cut_the_same_content_differently() -> None:
    data = os.urandom(24 * MiB)
    mine = Chunker(RING.chunker).boundaries(data)
    theirs = Chunker(OTHER.chunker).boundaries(data)
    assert Chunker(RING.chunker).seed != Chunker(OTHER.chunker).seed
    cuts_mine = {o for o, _ in mine[1:]}
    cuts_theirs = {o for o, _ in theirs[1:]}
    assert len(cuts_mine & cuts_theirs) <= len(cuts_mine) // 4
    assert Chunker(RING.chunker).boundaries(data) == mine  # deterministic per key


def test_paths_streams_and_read_only_streams_agree(tmp_path: Path) -> None:
    data = os.urandom(10 * MiB + 3)
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker(RING.chunker)

    class ReadOnly:
        def __init__(self) -> None:
            self.f = io.BytesIO(data)

        def read(self, n: int) -> bytes:
            return self.f.read(min(n, 100_000))

    expected = chunker.boundaries(data)
    assert [(o, len(v)) for o, v in chunker.split(path)] == expected
    assert [(o, len(v)) for o, v in chunker.split(str(path))] == expected
    assert [(o, len(v)) for o, v in chunker.split(ReadOnly())] == expected


def test_a_gibibyte_is_chunked_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        total = sum(len(view) for _, view in Chunker(RING.chunker).split(LazyStream(1024 * MiB)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 1024 * MiB
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB"


def test_the_pipeline_streams_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        total = 0
        for sealed in encrypt_file(LazyStream(96 * MiB), RING, "ab" * 16):
            total += sealed.size  # envelopes dropped as an uploader would
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 96 * MiB
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
