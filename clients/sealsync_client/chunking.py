"""Content-defined chunking, keyed per keyring, streaming in bounded memory.

Boundaries come from FastCDC 2020 through pyfastcdc's compiled Cython core:
no Python loop touches individual bytes, and its stream reader refills one
reused 2 x max-size buffer with `readinto`, so memory stays at 2 MiB (tier 0)
whatever the file size.

Chunk sizes come in tiers picked by the file's size (`tier_for`): tier 0
(min 64 KiB, mean ~300 KiB, max 1 MiB) for files up to 1 GiB, and each tier
above doubles every size for files twice as large. Small chunks keep what an
edit re-sends small; the tiers keep a version under the server's 4096-chunk
cap (docs/FORMAT.md, "Chunking").

The keyring's chunker key picks a secret 62-bit seed that pyfastcdc XORs into
the gear table, so boundaries are not a public function of the content. That
alone is a weak key (docs/FORMAT.md, "Chunking": the threat, and what this
does not hide); the envelope's Padme padding is the other half of the
defence, because it hides the exact chunk lengths those attacks need.

The chunker is not part of the decryption format: readers never chunk, so a
stronger chunker later only costs dedup across the switch.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any, Final, Protocol, cast

from . import crypto

# Tier 0. FastCDC picks its cut masks for CUT_SIZE and only looks for cuts
# after MIN_SIZE, so the mean chunk comes out near 300 KiB on random data.
MIN_SIZE: Final = 64 * 1024
CUT_SIZE: Final = 256 * 1024
MAX_SIZE: Final = 1024 * 1024
# Level 1: a tighter size spread than none, and quicker re-synchronisation
# after an edit than level 2 (measured: benchmarks/README.md).
NORMALIZATION: Final = 1
TIER0_FILE_MAX: Final = 1 << 30  # tier 0 up to 1 GiB: about 3400 chunks
TOP_TIER: Final = 3  # max chunk 8 MiB: envelopes stay under the server's 16 MiB

_SEED_TAG: Final = b"sealsync:chunker-seed:v1"


def tier_for(size: int) -> int:
    """The chunk-size tier for a file of `size` bytes: 0 up to 1 GiB, then one
    more per doubling, at most TOP_TIER (about 8 GiB in 4096 chunks)."""
    tier = 0
    while tier < TOP_TIER and size > TIER0_FILE_MAX << tier:
        tier += 1
    return tier


class ReadsInto(Protocol):
    """A binary stream that fills a buffer (raw files, BytesIO): preferred."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Reads(Protocol):
    """A binary stream that only returns bytes."""

    def read(self, size: int, /) -> bytes: ...


Source = str | os.PathLike[str] | ReadsInto | Reads


def chunker_seed(key: bytes) -> int:
    """The gear-table seed for a chunker key: 62 bits, never 0 (0 means
    "unkeyed" to pyfastcdc, which also shifts it left inside a uint64)."""
    return (int.from_bytes(crypto.keystream(key, _SEED_TAG, 8), "little") >> 2) or 1


class Chunker:
    """Splits files at keyed content-defined boundaries.

    One instance per keyring; reusable, but not from two threads at once.
    """

    def __init__(self, key: bytes, tier: int = 0, *, min_size: int | None = None,
                 cut_size: int | None = None, max_size: int | None = None) -> None:
        """A tier's sizes, unless given explicitly (tests use tiny chunks)."""
        if not 0 <= tier <= TOP_TIER:
            raise ValueError(f"chunk tier must be 0..{TOP_TIER}")
        self.seed = chunker_seed(key)
        self.tier = tier
        self.min_size = min_size or MIN_SIZE << tier
        self.max_size = max_size or MAX_SIZE << tier
        import pyfastcdc  # here, not at import: see crypto's note on peak memory
        self._cdc = pyfastcdc.FastCDC(cut_size or CUT_SIZE << tier, min_size=self.min_size,
                                      max_size=self.max_size,
                                      normalized_chunking=NORMALIZATION, seed=self.seed)

    def split(self, source: Source) -> Iterator[tuple[int, memoryview]]:
        """Yield (offset, chunk) over a path or binary stream, in order.

        Each chunk is a view into a reused buffer, valid only until the next
        one is requested: hash and encrypt it (or copy it) before moving on.
        """
        if isinstance(source, str | os.PathLike):
            with open(source, "rb", buffering=0) as raw:
                for chunk in self._cdc.cut_stream(raw):
                    yield chunk.offset, chunk.data
        else:
            # Blocking streams only: pyfastcdc reads until readinto returns 0.
            for chunk in self._cdc.cut_stream(cast(Any, source)):
                yield chunk.offset, chunk.data

    def boundaries(self, data: bytes) -> list[tuple[int, int]]:
        """(offset, length) of every chunk of an in-memory buffer."""
        return [(offset, len(view)) for offset, view in self.split(io.BytesIO(data))]
