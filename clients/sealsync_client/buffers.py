"""Sealing buffers shared by every upload of one Transfer (transfer.py).

Why a pool: however many files upload at once, sealing memory must stay
bounded by the worker count, not grow with the files in flight (the 1 GiB
upload's peak RSS target). Buffers are allocated on first use and grown
only when a larger chunk tier needs it.
"""
from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager

from .crypto import padded_len, sealed_len


class Buffers:
    """At most `count` (plaintext, envelope) buffer pairs, shared by every
    upload of one Transfer: however many files upload at once, sealing
    memory stays at count x 2 x the largest chunk (2 MiB per pair at tier 0).
    """

    def __init__(self, count: int) -> None:
        self._free: queue.LifoQueue[tuple[bytearray, bytearray] | None] = queue.LifoQueue()
        for _ in range(count):
            self._free.put(None)  # allocated on first use

    @contextmanager
    def take(self, chunk_size: int, envelope: bool = True) -> Iterator[tuple[bytearray, bytearray]]:
        """A pair that fits a chunk of `chunk_size` bytes; waits while all are in use.
        Without `envelope` only the plaintext buffer need fit (a pack's
        blobs are sealed straight into the pack)."""
        pair = self._free.get()
        try:
            if pair is None or len(pair[0]) < padded_len(chunk_size) \
                    or (envelope and len(pair[1]) < sealed_len(chunk_size)):
                pair = None  # drop the small one before allocating
                pair = bytearray(padded_len(chunk_size)), \
                    bytearray(sealed_len(chunk_size) if envelope else 0)
            yield pair
        finally:
            self._free.put(pair)

    @contextmanager
    def plain(self, chunk_size: int) -> Iterator[bytearray]:
        with self.take(chunk_size, envelope=False) as (buf, _):
            yield buf
