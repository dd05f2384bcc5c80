"""Content-defined chunking, keyed per keyring, streaming in bounded memory.

Boundaries come from FastCDC 2020 through pyfastcdc's compiled Cython core:
no Python loop touches individual bytes, and its stream reader refills one
reused 2 x MAX_SIZE buffer with `readinto`, so memory stays at 8 MiB whatever
the file size.

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

import pyfastcdc

from . import crypto

MIN_SIZE: Final = 256 * 1024
# FastCDC picks its cut masks for this size and only looks for cuts after
# MIN_SIZE, so the mean chunk comes out near 1 MiB (0.95 MiB on random data).
CUT_SIZE: Final = 768 * 1024
MAX_SIZE: Final = 4 * 1024 * 1024
NORMALIZATION: Final = 2  # tighter size spread, almost no forced cuts at MAX_SIZE

_SEED_TAG: Final = b"sealsync:chunker-seed:v1"



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

    def __init__(self, key: bytes, *, min_size: int = MIN_SIZE, cut_size: int = CUT_SIZE,
                 max_size: int = MAX_SIZE) -> None:
        self.seed = chunker_seed(key)
        self.max_size = max_size
        self._cdc = pyfastcdc.FastCDC(cut_size, min_size=min_size, max_size=max_size,
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
