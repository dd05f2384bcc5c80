"""Packs in a batch: what a client may declare, and what arrived. Pure.

A batch may carry `packs: [{pack_id, size, blobs: [{chunk, offset, length}]}]`
(docs/DESIGN.md, "Packs"): each pack is one create-only object
`packs/{user}/{pack_id}` holding sealed blobs (chunk envelopes). The server
learns only what it needs for its chunk index (chunk id -> pack, offset,
length): sealed ranges, never plaintext lengths, and never the order of
chunks within a file (a pack's blobs are the client's to order; the
desktop client sorts them by chunk id, FORMAT.md section 12).

  parse_packs     bound and validate the declaration against the entries
                  (400/413 before anything is written)
  arrived         which declared blobs a commit may trust: those of packs
                  whose real size is exactly the declared one
  encode/decode   the compact binary form stored next to the batch record

A chunk an entry needs that is neither stored already (chunk index) nor in
a pack of the batch that arrived is counted missing at commit, and that
entry alone is rejected (core.decide): whether a PUT happened is only
known then.
"""
from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import BadRequest, SealsyncError, TooLarge
from .ids import check_chunk_id, check_id
from .requests import Limits, int_in, only_fields

PACKS = "packs/"


class Location(NamedTuple):
    """Where a chunk's envelope lies: bytes [offset, offset + length) of a pack."""

    pack_id: str
    offset: int
    length: int


@dataclass(frozen=True)
class Blob:
    chunk_id: str
    offset: int
    length: int


@dataclass(frozen=True)
class PackDecl:
    """One pack as a batch declared it."""

    pack_id: str
    size: int
    blobs: tuple[Blob, ...]


def pack_key(user_id: str, pack_id: str) -> str:
    """A pack's object: under the user's own prefix, so a pack id another
    user chose names a different (absent) object here (invariant 7)."""
    return f"{PACKS}{user_id}/{pack_id}"


def parse_packs(raw: object, limits: Limits,
                chunk_sizes: Mapping[str, int]) -> tuple[PackDecl, ...]:
    """Validate a batch's `packs` against its entries' chunks.

    `chunk_sizes` maps every chunk an entry references to its declared
    (sealed) size. Refused with a 4xx naming the pack: a bad pack id, a
    pack id twice, a range outside its pack, overlapping ranges, a chunk
    in two packs or twice in one, a blob whose length is not the entries'
    size for that chunk, too many packs or blobs (413). A blob no entry
    references is allowed (a pack sent by an interrupted upload, declared
    again for some of its chunks) and never indexed."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise BadRequest("packs must be a list of {pack_id, size, blobs}")
    if len(raw) > limits.max_batch_packs:
        raise TooLarge(f"a batch may declare at most {limits.max_batch_packs} packs")
    out: list[PackDecl] = []
    seen_packs: dict[str, int] = {}
    seen_chunks: dict[str, int] = {}
    for i, item in enumerate(raw):
        try:
            decl = _parse_pack(item, limits, chunk_sizes)
            if decl.pack_id in seen_packs:
                raise BadRequest(f"pack_id appears twice (also packs[{seen_packs[decl.pack_id]}])")
            for b in decl.blobs:
                if b.chunk_id in seen_chunks:
                    raise BadRequest(f"chunk {b.chunk_id} is also in "
                                     f"packs[{seen_chunks[b.chunk_id]}]")
                seen_chunks[b.chunk_id] = i
        except SealsyncError as exc:
            raise type(exc)(f"packs[{i}]: {exc.message}") from None
        seen_packs[decl.pack_id] = i
        out.append(decl)
    return tuple(out)


def _parse_pack(item: object, limits: Limits, chunk_sizes: Mapping[str, int]) -> PackDecl:
    if not isinstance(item, dict):
        raise BadRequest("each pack must be an object")
    only_fields(item, {"pack_id", "size", "blobs"})
    pack_id = check_id(item.get("pack_id"), "pack_id")
    size = int_in(item.get("size"), "pack size", 1, limits.max_pack_bytes)
    raw = item.get("blobs")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("blobs must be a non-empty list of {chunk, offset, length}")
    if len(raw) > limits.max_pack_blobs:
        raise TooLarge(f"a pack may hold at most {limits.max_pack_blobs} blobs")
    blobs: list[Blob] = []
    for b in raw:
        if not isinstance(b, dict):
            raise BadRequest("each blob must be an object {chunk, offset, length}")
        only_fields(b, {"chunk", "offset", "length"})
        chunk = check_chunk_id(b.get("chunk"))
        offset = int_in(b.get("offset"), "blob offset", 0, size)
        length = int_in(b.get("length"), "blob length", 1, size)
        if offset + length > size:
            raise BadRequest(f"blob of chunk {chunk} lies outside the pack ({size} bytes)")
        if chunk in chunk_sizes and chunk_sizes[chunk] != length:
            raise BadRequest(f"chunk {chunk} is {length} bytes in the pack but "
                             f"{chunk_sizes[chunk]} in its entry")
        blobs.append(Blob(chunk, offset, length))
    ordered = sorted(blobs, key=lambda x: x.offset)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.offset < a.offset + a.length:
            raise BadRequest(f"blobs of chunks {a.chunk_id} and {b.chunk_id} overlap")
    if len({b.chunk_id for b in blobs}) != len(blobs):
        raise BadRequest("a chunk appears twice in the pack")
    return PackDecl(pack_id, size, tuple(blobs))


def packed_chunks(decls: tuple[PackDecl, ...]) -> set[str]:
    return {b.chunk_id for d in decls for b in d.blobs}


def arrived(decls: tuple[PackDecl, ...],
            sizes: Mapping[str, int | None]) -> tuple[dict[str, Location], set[str]]:
    """(locations of the blobs a commit may trust, chunks whose pack failed).

    `sizes[pack_id]` is S3's real size of the pack (None: never arrived). A
    pack of any other size than declared is a lie or a broken PUT: none of
    its ranges can be trusted, so its chunks count as missing (the entries
    needing them are rejected; the others commit)."""
    found: dict[str, Location] = {}
    lost: set[str] = set()
    for d in decls:
        ok = sizes.get(d.pack_id) == d.size
        for b in d.blobs:
            if ok:
                found[b.chunk_id] = Location(d.pack_id, b.offset, b.length)
            else:
                lost.add(b.chunk_id)
    return found, lost


# -- the stored form ---------------------------------------------------------------
# per pack: id (16 bytes), size u32, blob count u16; then every blob:
# chunk id (32), offset u32, length u32. 8,192 blobs take 328 KB (< 400 KB).
_PACK = struct.Struct(">16sIH")
_BLOB = struct.Struct(">32sII")


def encode_packs(decls: tuple[PackDecl, ...]) -> tuple[bytes, bytes]:
    head = b"".join(_PACK.pack(bytes.fromhex(d.pack_id), d.size, len(d.blobs)) for d in decls)
    blobs = b"".join(_BLOB.pack(bytes.fromhex(b.chunk_id), b.offset, b.length)
                     for d in decls for b in d.blobs)
    return head, blobs


def decode_packs(head: bytes, blobs: bytes) -> tuple[PackDecl, ...]:
    out: list[PackDecl] = []
    at = 0
    for pid, size, count in _PACK.iter_unpack(head):
        part = blobs[at:at + count * _BLOB.size]
        at += count * _BLOB.size
        out.append(PackDecl(pid.hex(), size, tuple(
            Blob(c.hex(), o, n) for c, o, n in _BLOB.iter_unpack(part))))
    return tuple(out)


def location_body(loc: Location) -> dict[str, Any]:
    return {"pack": loc.pack_id, "offset": loc.offset, "length": loc.length}
