"""Packs: many sealed chunk envelopes and one encrypted index in one object.

A pack is what an upload PUTs instead of one object per chunk (docs/FORMAT.md
section 12). Its blobs are today's chunk envelopes, unchanged: each is bound
to (keyring, user, chunk id), not to the pack, so a ranged GET of one blob
verifies on its own (`pipeline.open_chunk`) and a repacker moves blobs
between packs without opening them. Layout, big-endian::

    header   "SSPK" | version u8                                   5 bytes
    blobs    chunk envelopes, sorted by chunk id, back to back
    gap      zeros, up to the pack's size bucket
    index    envelope of kind "P" under the content key, bound to
             keyring id | user id | pack id | trailer;
             plaintext: pack size u32 | count u32
                        | count x (chunk id[32] | offset u32 | length u32)
    trailer  index length u32 | version u8 | "SSPK"                9 bytes

Blobs follow chunk-id order (a keyed hash), never file order. The pack's
size is `pack_len` of its content: Padme, then up to a multiple of 64 KiB,
so its size alone hides the count and exact sizes of the blobs within that
bucket. A reader fetches the tail (`tail_needed`), opens the index
(`open_pack_index`) and then GETs the blobs it wants (`coalesce`,
`blob_at`). Every deviation is an `IntegrityError`.

Pure: no network, no files. Randomness (the pack id and the index's salt)
is a parameter, like everywhere in the format.
"""
from __future__ import annotations

import bisect
import os
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, NamedTuple

from . import crypto
from .errors import IntegrityError
from .keys import Keyring
from .wire import ID_HEX, chunk_id_bytes, user_id_bytes

MAGIC: Final = b"SSPK"
VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({VERSION})
HEADER_LEN: Final = len(MAGIC) + 1
TRAILER_LEN: Final = 4 + 1 + len(MAGIC)
BUCKET: Final = 64 * 1024  # pack sizes are multiples of this (and Padme values)
TARGET_SIZE: Final = 16 * 1024 * 1024  # a writer's default cap on the padded size
MAX_PACK_SIZE: Final = 64 * 1024 * 1024  # readers accept up to this: writers may raise targets
DEFAULT_GAP: Final = 256 * 1024  # fetching this much unwanted data is cheaper than a GET
PACK_ID_LEN: Final = 16

_ENTRY = struct.Struct(">32sII")
_INDEX_HEAD = struct.Struct(">II")  # pack size, count
_TRAILER = struct.Struct(">IB4s")
_OVERHEAD: Final = crypto.HEADER_LEN + crypto.TAG_LEN  # a chunk envelope around its padding
MIN_BLOB: Final = crypto.sealed_len(1)
_MIN_INDEX: Final = crypto.sealed_len(_INDEX_HEAD.size + _ENTRY.size)
_PACK_ID = re.compile(f"[0-9a-f]{{{ID_HEX}}}")


class BlobRef(NamedTuple):
    """Where one blob (a sealed chunk envelope) lies in its pack."""

    chunk_id: str  # 64 lowercase hex
    offset: int  # from the start of the pack
    length: int  # the envelope's (padded) length

    @property
    def end(self) -> int:
        return self.offset + self.length


class SealedPack(NamedTuple):
    """A finished pack: PUT `data` as pack `pack_id`; `blobs` in pack order
    are the ranges an upload request may name (no plaintext lengths)."""

    pack_id: str  # 32 lowercase hex, random
    data: bytes
    blobs: list[BlobRef]


@dataclass(frozen=True)
class PackIndex:
    """A pack's opened index: its exact size and every blob, in pack order."""

    pack_id: str
    size: int
    blobs: tuple[BlobRef, ...]

    def find(self, chunk_id: str) -> BlobRef | None:
        """The blob holding `chunk_id`, or None (blobs are sorted by id)."""
        i = bisect.bisect_left(self.blobs, chunk_id, key=lambda b: b.chunk_id)
        return self.blobs[i] if i < len(self.blobs) and self.blobs[i].chunk_id == chunk_id \
            else None


class Range(NamedTuple):
    """One ranged GET, [start, end), and the wanted blobs inside it."""

    start: int
    end: int
    refs: list[BlobRef]


def pack_len(raw: int) -> int:
    """The stored size of a pack whose content takes `raw` bytes: Padme,
    then up to a multiple of BUCKET (so small packs all weigh 64 KiB)."""
    return -(-crypto.padme(raw) // BUCKET) * BUCKET


def _index_len(count: int) -> int:
    return crypto.sealed_len(_INDEX_HEAD.size + count * _ENTRY.size)


def _pack_size(count: int, blob_bytes: int) -> int:
    return pack_len(HEADER_LEN + blob_bytes + _index_len(count) + TRAILER_LEN)


def _is_blob_length(length: int) -> bool:
    """Whether `length` is the length of some chunk envelope (1+ plaintext bytes)."""
    body = length - _OVERHEAD
    return length >= MIN_BLOB and crypto.padme(body) == body


def _pack_id_bytes(pack_id: str) -> bytes:
    if not isinstance(pack_id, str) or not _PACK_ID.fullmatch(pack_id):
        raise ValueError(f"pack id must be {ID_HEX} lowercase hex digits")
    return bytes.fromhex(pack_id)


def _trailer(index_len: int, version: int = VERSION) -> bytes:
    return _TRAILER.pack(index_len, version, MAGIC)


def _index_context(ring: Keyring, uid: bytes, pid: bytes, trailer: bytes) -> bytes:
    """The index's associated data: it opens only for this keyring, user and
    pack, with this trailer (so the trailer is authenticated too)."""
    return ring.keyring_id + uid + pid + trailer


class PackWriter:
    """Collects chunk envelopes into one pack of at most `target_size` bytes.

    `add` copies each envelope (callers may reuse their buffers) and returns
    False once the next blob would push the padded pack past the target;
    `finish` seals the index and lays the pack out. One pack per writer.
    Memory: the blobs, then about twice them while `finish` lays them out.
    """

    def __init__(self, ring: Keyring, user_id: str, target_size: int = TARGET_SIZE) -> None:
        if not BUCKET <= target_size <= MAX_PACK_SIZE:
            raise ValueError(f"a pack's target size is {BUCKET}..{MAX_PACK_SIZE} bytes")
        self._ring, self._uid, self.target_size = ring, user_id_bytes(user_id), target_size
        self._blobs: dict[bytes, bytes] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._blobs)

    def __contains__(self, chunk_id: object) -> bool:
        try:
            return isinstance(chunk_id, str) and chunk_id_bytes(chunk_id) in self._blobs
        except ValueError:
            return False

    @property
    def size(self) -> int:
        """The padded size the pack would have if finished now (0 when empty)."""
        return _pack_size(len(self._blobs), self._bytes) if self._blobs else 0

    def add(self, chunk_id: str, envelope: bytes | bytearray | memoryview) -> bool:
        """Put one chunk's envelope (from `seal_chunk`/`seal_span`) in the pack.

        True if the chunk is in the pack (a chunk added twice is kept once),
        False if the pack is full: finish it and start another. Raises
        ValueError for what is not a chunk envelope, or one too large for
        any pack of this target.
        """
        cid = chunk_id_bytes(chunk_id)
        if cid in self._blobs:
            return True
        if not _is_blob_length(len(envelope)) or envelope[0] not in crypto.SUPPORTED_VERSIONS \
                or bytes(envelope[1:2]) != crypto.KIND_CHUNK:
            raise ValueError("only sealed chunk envelopes go into a pack")
        if _pack_size(len(self._blobs) + 1, self._bytes + len(envelope)) > self.target_size:
            if not self._blobs:
                raise ValueError("this envelope does not fit in a pack of the target size")
            return False
        self._blobs[cid] = bytes(envelope)
        self._bytes += len(envelope)
        return True

    def finish(self, rand: crypto.Random = os.urandom) -> SealedPack:
        """Lay out and seal the pack under a fresh random 128-bit pack id."""
        if not self._blobs:
            raise ValueError("an empty pack cannot be finished")
        pid = new_pack_id(rand)
        lay = layout((cid.hex(), len(env)) for cid, env in self._blobs.items())
        tail = seal_tail(self._ring, self._uid, pid, lay, rand)
        gap = bytes(lay.size - lay.blob_end - len(tail))
        data = b"".join([MAGIC, bytes([VERSION]),
                         *(self._blobs[bytes.fromhex(r.chunk_id)] for r in lay.blobs),
                         gap, tail])
        self._blobs.clear()
        return SealedPack(pid, data, list(lay.blobs))


class Layout(NamedTuple):
    """Where each blob of a pack goes, and the pack's size: a function of
    the blobs' ids and lengths alone, so a writer can declare a pack (and
    be sent its URL) before sealing any of it."""

    size: int
    blobs: tuple[BlobRef, ...]  # chunk-id order

    @property
    def blob_end(self) -> int:
        return self.blobs[-1].end if self.blobs else HEADER_LEN


def layout(blobs: Iterable[tuple[str, int]]) -> Layout:
    """The canonical layout of blobs given as (chunk id, envelope length):
    sorted by id, back to back from the header; duplicates kept once."""
    refs, offset = [], HEADER_LEN
    for cid, length in sorted(dict(blobs).items()):
        if not _is_blob_length(length):
            raise ValueError("only chunk envelopes go into a pack")
        refs.append(BlobRef(cid, offset, length))
        offset += length
    if not refs:
        raise ValueError("an empty pack has no layout")
    return Layout(pack_len(offset + _index_len(len(refs)) + TRAILER_LEN), tuple(refs))


def pack_size(count: int, blob_bytes: int) -> int:
    """The size of a pack of `count` blobs of `blob_bytes` in all (a
    planner's running total: add blobs while it stays under the target)."""
    return _pack_size(count, blob_bytes)


def new_pack_id(rand: crypto.Random = os.urandom) -> str:
    pid = rand(PACK_ID_LEN)
    if len(pid) != PACK_ID_LEN:
        raise ValueError("the random source returned a short pack id")
    return pid.hex()


def seal_tail(ring: Keyring, user_id: str | bytes, pack_id: str, lay: Layout,
              rand: crypto.Random = os.urandom) -> bytes:
    """The pack's last bytes, index envelope then trailer: write them at
    `lay.size - len(tail)`, the blobs at their offsets, the header at 0 and
    zeros between (`write_frame`)."""
    uid = user_id if isinstance(user_id, bytes) else user_id_bytes(user_id)
    plaintext = _INDEX_HEAD.pack(lay.size, len(lay.blobs)) + b"".join(
        _ENTRY.pack(bytes.fromhex(r.chunk_id), r.offset, r.length) for r in lay.blobs)
    index_len = _index_len(len(lay.blobs))
    trailer = _trailer(index_len)
    index = crypto.seal(ring.content, crypto.KIND_PACK_INDEX, plaintext,
                        _index_context(ring, uid, _pack_id_bytes(pack_id), trailer), rand=rand)
    assert len(index) == index_len
    return index + trailer


def write_frame(buf: bytearray | memoryview, lay: Layout, tail: bytes) -> None:
    """Header, gap and tail of a pack into `buf` (at least `lay.size` bytes,
    reused from pack to pack); the blobs go in at their offsets."""
    view = memoryview(buf)
    view[:HEADER_LEN] = MAGIC + bytes([VERSION])
    gap_end = lay.size - len(tail)
    view[lay.blob_end:gap_end] = bytes(gap_end - lay.blob_end)
    view[gap_end:lay.size] = tail


def tail_needed(tail: bytes | bytearray | memoryview) -> int:
    """How many bytes from the pack's end `open_pack_index` needs.

    `tail` is what a suffix GET returned (at least the trailer: a suffix GET
    returns the whole object when it is shorter). Fetch `bytes=-65536`
    first; a pack of more than 1,586 blobs needs a second GET.
    """
    if len(tail) < TRAILER_LEN:
        raise IntegrityError()
    index_len: int
    index_len, version, magic = _TRAILER.unpack(bytes(tail[-TRAILER_LEN:]))
    if magic != MAGIC or version not in SUPPORTED_VERSIONS or index_len < _MIN_INDEX \
            or HEADER_LEN + MIN_BLOB + index_len + TRAILER_LEN > MAX_PACK_SIZE:
        raise IntegrityError()
    return index_len + TRAILER_LEN


def open_pack_index(ring: Keyring, user_id: str, pack_id: str,
                    tail: bytes | bytearray | memoryview, size: int | None = None) -> PackIndex:
    """Open the index of pack `pack_id` from the last bytes of the pack.

    `tail` must hold at least `tail_needed(tail)` bytes; `size`, if known
    (a ranged GET's Content-Range gives it), must be the pack's. Checks the
    trailer, the index's binding to (keyring, user, pack id), and that the
    blobs tile the pack canonically: sorted by chunk id, back to back from
    the header, each a chunk envelope's length, the pack exactly its bucket.
    Any bytes of the gap or header inside `tail` are checked too.
    """
    uid, pid = user_id_bytes(user_id), _pack_id_bytes(pack_id)
    needed = tail_needed(tail)
    if size is not None and (len(tail) > size or HEADER_LEN + MIN_BLOB + needed > size):
        raise IntegrityError()
    if len(tail) < needed:
        raise ValueError(f"the index needs the last {needed} bytes of the pack; "
                         f"{len(tail)} were given")
    view = memoryview(tail)
    trailer = bytes(view[-TRAILER_LEN:])
    index_len = needed - TRAILER_LEN
    plaintext = crypto.open_sealed(ring.content, crypto.KIND_PACK_INDEX,
                                   bytes(view[-needed:-TRAILER_LEN]),
                                   _index_context(ring, uid, pid, trailer))
    pack_size, blobs = _decode_index(plaintext, index_len)
    if (size is not None and size != pack_size) or len(tail) > pack_size:
        raise IntegrityError()
    # The tail covers [pack_size - len(tail), pack_size): check the clear bytes in it.
    start = pack_size - len(tail)
    gap_start, gap_end = blobs[-1].end, pack_size - needed
    lo, hi = max(gap_start, start), gap_end
    if lo < hi and any(view[lo - start:hi - start]):
        raise IntegrityError()
    if start < HEADER_LEN and bytes(view[:HEADER_LEN - start]) \
            != (MAGIC + trailer[4:5])[start:]:
        raise IntegrityError()
    return PackIndex(pack_id, pack_size, blobs)


def _decode_index(plaintext: bytes, index_len: int) -> tuple[int, tuple[BlobRef, ...]]:
    """(pack size, blobs) from an index plaintext, refusing any non-canonical one."""
    if len(plaintext) < _INDEX_HEAD.size:
        raise IntegrityError()
    pack_size, count = _INDEX_HEAD.unpack_from(plaintext)
    if count < 1 or len(plaintext) != _INDEX_HEAD.size + count * _ENTRY.size \
            or _index_len(count) != index_len:
        raise IntegrityError()
    blobs, offset, previous = [], HEADER_LEN, b""
    for cid, at, length in _ENTRY.iter_unpack(plaintext[_INDEX_HEAD.size:]):
        if cid <= previous or at != offset or not _is_blob_length(length):
            raise IntegrityError()
        blobs.append(BlobRef(cid.hex(), at, length))
        offset, previous = offset + length, cid
    if pack_size > MAX_PACK_SIZE or pack_size != pack_len(offset + index_len + TRAILER_LEN):
        raise IntegrityError()
    return pack_size, tuple(blobs)


def open_pack(ring: Keyring, user_id: str, pack_id: str,
              data: bytes | bytearray | memoryview) -> PackIndex:
    """The index of a whole pack held in memory, every clear byte checked
    (header, gap, trailer). The blobs verify as chunks (`open_chunk`)."""
    return open_pack_index(ring, user_id, pack_id, data, size=len(data))


def blob_at(data: bytes | bytearray | memoryview, ref: BlobRef, start: int = 0) -> bytes:
    """The envelope bytes of blob `ref` from `data`, which holds the pack's
    bytes from offset `start` on (a whole pack, or what a ranged GET returned).

    Open the result with `open_chunk` (the manifest gives the size). Raises
    IntegrityError if `data` stops short of the blob (the server returned
    less than the range asked for), ValueError if the range began after it.
    """
    if ref.offset < start:
        raise ValueError("this range begins after the blob")
    lo = ref.offset - start
    if lo + ref.length > len(data):
        raise IntegrityError()
    return bytes(memoryview(data)[lo:lo + ref.length])


def coalesce(refs: Iterable[BlobRef], gap: int = DEFAULT_GAP,
             max_span: int | None = None) -> list[Range]:
    """Group the wanted blobs of one pack into few ranged GETs.

    Sorted, disjoint ranges that start at a wanted blob and end at one;
    every distinct wanted blob lies in exactly one range. Two blobs share a
    range when at most `gap` unwanted bytes lie between them, unless that
    would make the range longer than `max_span` (a range holding a single
    blob may be longer). Duplicates in `refs` are fetched once.
    """
    if gap < 0 or (max_span is not None and max_span < 1):
        raise ValueError("gap must be >= 0 and max_span >= 1")
    groups: list[tuple[int, int, list[BlobRef]]] = []
    for ref in sorted(set(refs), key=lambda r: (r.offset, r.end, r.chunk_id)):
        if groups:
            start, end, members = groups[-1]
            new_end = max(end, ref.end)
            if ref.offset < end or (ref.offset - end <= gap and (
                    max_span is None or new_end - start <= max_span)):
                members.append(ref)
                groups[-1] = (start, new_end, members)
                continue
        groups.append((ref.offset, ref.end, [ref]))
    return [Range(start, end, members) for start, end, members in groups]
