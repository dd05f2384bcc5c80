"""A batch entry's chunk list sent against its base revision. Pure.

An edit of a big file keeps almost every chunk of its base: a 1 MiB
overwrite of a 1 GiB file changes a handful of its ~3,400 chunks. Listing
every chunk as `{id, size}` costs 86 bytes of JSON a chunk (~294 KB per
edit), more than a tenth of the bytes the edit sends. So an entry's
`chunks` may mix explicit chunks with **ranges of its base revision's
chunk list** (docs/DESIGN.md, "Edits sent against their base"):

  {"id": hex, "size": n}                 one chunk, as before
  {"base": start, "count": n, "size": s} chunks [start, start + n) of
                                         revision `base_revision`'s list,
                                         in order, whose sizes total s

An entry that uses a range must also send `chunks_sha256`: SHA-256 of its
full chunk list (the 32-byte ids in order, exactly what its device
signature covers). The server expands the ranges against the base's list
as stored and refuses the entry (400) unless the expansion hashes to that
digest, so a client whose idea of the base is stale or wrong learns it at
once and sends the full list; nothing it did not mean is ever recorded.

Sizes in a range are declared, as per-chunk sizes always were: they feed
the entry's size, the quota and metering, bounded like per-chunk sizes
(1 .. max_chunk_bytes per chunk). The expanded list is what the batch
record keeps, so the commit path sees a full list, as before.

  parse_chunk_list  validate an entry's `chunks` (+ `chunks_sha256`)
  expand            segments + the base's ordered ids -> the full list
`chunks_sha256` is `core.signatures.chunks_digest` of the expanded list:
the very digest the entry's device signature covers.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import BadRequest, TooLarge
from .ids import check_chunk_id
from .requests import Limits, int_in, only_fields, sha256_field
from .signatures import chunks_digest


@dataclass(frozen=True)
class Explicit:
    """One chunk named by id."""

    chunk_id: str
    size: int


@dataclass(frozen=True)
class BaseRange:
    """Chunks [start, start + count) of the base revision's list."""

    start: int
    count: int
    size: int


Segment = Explicit | BaseRange


@dataclass(frozen=True)
class ChunkList:
    """An entry's `chunks` as sent: explicit chunks and base ranges, in order."""

    segments: tuple[Segment, ...]
    sha256: bytes | None = None  # of the expanded list; required with ranges

    @property
    def uses_base(self) -> bool:
        return any(isinstance(s, BaseRange) for s in self.segments)

    @property
    def refs(self) -> int:
        """How many chunk references the list expands to."""
        return sum(s.count if isinstance(s, BaseRange) else 1 for s in self.segments)

    @property
    def size(self) -> int:
        """Σ declared sizes."""
        return sum(s.size for s in self.segments)

    def explicit(self) -> list[tuple[str, int]]:
        return [(s.chunk_id, s.size) for s in self.segments if isinstance(s, Explicit)]


def parse_chunk_list(raw: object, digest: object, limits: Limits) -> ChunkList:
    """Validate an entry's `chunks` and `chunks_sha256`. Each item is either
    `{id, size}` or `{base, count, size}`; the list may reference at most
    `max_chunks` chunks once expanded (413)."""
    if not isinstance(raw, list):
        raise BadRequest("chunks must be a list of {id, size} or {base, count, size}")
    if len(raw) > limits.max_chunks:
        raise TooLarge(f"a version may reference at most {limits.max_chunks} chunks")
    segments: list[Segment] = []
    refs = 0
    for item in raw:
        if not isinstance(item, dict):
            raise BadRequest("each chunk must be an object {id, size} or {base, count, size}")
        # `base` makes an item a range (an {id, size} never had one)
        segment = _range(item, limits) if "base" in item else _explicit(item, limits)
        refs += segment.count if isinstance(segment, BaseRange) else 1
        if refs > limits.max_chunks:
            raise TooLarge(f"a version may reference at most {limits.max_chunks} chunks")
        segments.append(segment)
    chunks = ChunkList(tuple(segments), sha256_field(digest, "chunks_sha256"))
    if chunks.uses_base and chunks.sha256 is None:
        raise BadRequest("chunks_sha256 is required when chunks name ranges of the base")
    return chunks


def _explicit(item: dict[str, object], limits: Limits) -> Explicit:
    # exactly as lenient as before ranges (old clients' lists work unchanged)
    chunk_id = check_chunk_id(item.get("id"))
    return Explicit(chunk_id, int_in(item.get("size"), "chunk size", 1, limits.max_chunk_bytes))


def _range(item: dict[str, object], limits: Limits) -> BaseRange:
    only_fields(item, {"base", "count", "size"})
    start = int_in(item.get("base"), "a range's base", 0, limits.max_chunks - 1)
    count = int_in(item.get("count"), "a range's count", 1, limits.max_chunks)
    # the bounds of `count` chunks of 1 .. max_chunk_bytes each
    size = int_in(item.get("size"), "a range's size", count, count * limits.max_chunk_bytes)
    return BaseRange(start, count, size)


def expand(chunks: ChunkList, base: Sequence[str]) -> tuple[str, ...]:
    """The full chunk list: each range replaced by its slice of `base` (the
    base revision's ids in the order the server stores them). A range
    outside `base`, or an expansion whose digest is not `chunks_sha256`,
    is a BadRequest."""
    out: list[str] = []
    for s in chunks.segments:
        if isinstance(s, Explicit):
            out.append(s.chunk_id)
        elif s.start + s.count > len(base):
            raise BadRequest(f"the range base={s.start} count={s.count} lies outside the "
                             f"base revision's {len(base)} chunks")
        else:
            out.extend(base[s.start:s.start + s.count])
    if chunks.sha256 is not None and chunks_digest(out) != chunks.sha256:
        raise BadRequest("chunks_sha256 is not the digest of the chunk list the ranges "
                         "expand to: the base revision's list is not what the client "
                         "assumed (send the full list)")
    return tuple(out)

