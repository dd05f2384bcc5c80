"""DynamoDB for packs: a batch's pack declaration and the chunk index's
locations.

  PK#{batch}  PACKS    the packs a batch declared (core.packs.encode_packs),
                       written before the batch record, same TTL; a key of
                       its own, so reading the batch (one Query on UP#{batch})
                       never reads it
  L#{user}    {chunk}  where a chunk stored in a pack lies: `pack` (id),
                       `off` and `len`, its sealed range in
                       `packs/{user}/{pack}`. A chunk without one is a v1
                       object, `chunks/{user}/{chunk}`.

The chunk index proper, `C#{user}` (adapters/meta.py), still only says "a
committed version references this chunk" (dedup); locations are items of
their own so that no plain index write can ever drop one. A location is
written once the pack is seen in S3 at its declared size and before any
head can reference the chunk, so a reader always finds where a committed
chunk lies.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core.packs import Location, PackDecl, decode_packs, encode_packs
from .ddb_batch import get_all, put_all
from .meta import ddb_item, ddb_plain


def _bytes(raw: Any) -> bytes:
    return bytes(getattr(raw, "value", raw) or b"")


class Packs:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def declare(self, batch_id: str, decls: tuple[PackDecl, ...], expires_at: int) -> None:
        if not decls:
            return
        head, blobs = encode_packs(decls)
        self.db.put_item(TableName=self.table,
                         Item=ddb_item(pk=f"PK#{batch_id}", sk="PACKS", head=head,
                                       blobs=blobs, expires_at=expires_at))

    def declared(self, batch_id: str) -> tuple[PackDecl, ...]:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"PK#{batch_id}", sk="PACKS"))
        if "Item" not in got:
            return ()
        it = ddb_plain(got["Item"])
        return decode_packs(_bytes(it.get("head")), _bytes(it.get("blobs")))

    def locations(self, user_id: str, chunk_ids: Iterable[str]) -> dict[str, Location]:
        """The pack location of each of `chunk_ids` stored in a pack; chunks
        without one (v1 chunk objects) are left out."""
        keys = [ddb_item(pk=f"L#{user_id}", sk=c) for c in sorted(set(chunk_ids))]
        out: dict[str, Location] = {}
        for raw in get_all(self.db, self.table, keys, ProjectionExpression="sk, #p, #o, #l",
                           ExpressionAttributeNames={"#p": "pack", "#o": "off", "#l": "len"}):
            it = ddb_plain(raw)
            out[it["sk"]] = Location(it["pack"], int(it["off"]), int(it["len"]))
        return out

    def remember(self, user_id: str, located: Mapping[str, Location]) -> None:
        """Record where chunks stored in packs lie (25 per BatchWriteItem, several at
        once: adapters/ddb_batch.py).
        The caller passes only chunks the index did not know; a later write
        for the same chunk (a concurrent batch, a re-sent chunk) replaces
        the location with another stored copy of the same envelope."""
        put_all(self.db, self.table, [
            ddb_item(pk=f"L#{user_id}", sk=c, pack=loc.pack_id, off=loc.offset, len=loc.length)
            for c, loc in sorted(located.items())])
