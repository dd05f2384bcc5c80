"""Presigned URLs for packs: a batch's create-only pack PUTs, and where a
version's chunks lie for a reader (docs/DESIGN.md "Packs").

A version's body lists its chunks (distinct, in the manifest's order on the
server: sorted ids) as either `{id, url}` (a v1 chunk object) or
`{id, pack, offset, length}`, with `packs: {pack_id: url}` once per pack.
A pack URL is presigned without a range: the reader sends its own `Range`
header, so it can fetch several close blobs in one GET (Range is not a
signed header, S3 accepts any). The pack is the user's own ciphertext, so
the whole object is no more than the blobs' owner may read.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import Runtime
from .core.ids import chunk_key
from .core.packs import PackDecl, location_body, pack_key


def pack_urls(rt: Runtime, user_id: str, packs: tuple[PackDecl, ...]) -> dict[str, Any]:
    """The batch answer's `pack_urls` (one create-only PUT of exactly the
    declared size per pack), or nothing when the batch declared none."""
    if not packs:
        return {}
    return {"pack_urls": {d.pack_id: rt.blobs.presign_put(pack_key(user_id, d.pack_id),
                                                          d.size, create_only=True)
                          for d in packs}}


def chunk_sources(rt: Runtime, user_id: str, chunk_ids: Sequence[str]) -> dict[str, Any]:
    """`chunks` (and `packs` if any chunk is in one) for a version's body."""
    ids = list(dict.fromkeys(chunk_ids))
    where = rt.packs.locations(user_id, ids)
    chunks: list[dict[str, Any]] = []
    packs: dict[str, str] = {}
    for c in ids:
        loc = where.get(c)
        if loc is None:  # a v1 chunk object
            chunks.append({"id": c, "url": rt.blobs.presign_get(chunk_key(user_id, c))})
            continue
        chunks.append({"id": c, **location_body(loc)})
        if loc.pack_id not in packs:
            packs[loc.pack_id] = rt.blobs.presign_get(pack_key(user_id, loc.pack_id))
    return {"chunks": chunks, **({"packs": packs} if packs else {})}
