"""DynamoDB: file heads, revisions, the change feed and the chunk index.
One table, keyed `pk`/`sk`; a sparse GSI finds pending batches.

Item layout (all ids are opaque hex; nothing here is plaintext):
  F#{user}         {file}           head: revision, deleted, manifest key
  R#{user}#{file}  {rev:012d}       one committed revision (`expired`: no
                                    chunk list any more; core/retention.py)
  S#{user}         SEQ              the user's last feed seq
  S#{user}         {seq:016d}       feed entry: file, revision
  C#{user}         {chunk}          a chunk known to exist (size)
Batch records (`UP#{batch}`, a v1 upload's too: it is a batch of one), the
heads they read and the fenced groups they commit are in adapters/batches.py.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..core.batch import unpack_changes
from ..core.records import Change, Version
from .ddb_batch import get_all, put_all

PENDING_INDEX = "pending"
PENDING_SHARDS = "0123456789abcdef"
_SEQ_MAX = "9" * 16
_ser = TypeSerializer()
_de = TypeDeserializer()


class FenceLost(Exception):
    """The head or the feed moved since we read it: read again, decide again."""


def _pack(ids: Iterable[str]) -> bytes:
    return b"".join(bytes.fromhex(i) for i in ids)


def _unpack(raw: Any) -> tuple[str, ...]:
    data = bytes(getattr(raw, "value", raw) or b"")
    return tuple(data[i:i + 32].hex() for i in range(0, len(data), 32))


def ddb_item(**fields: Any) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in fields.items() if v is not None}


def ddb_plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


class Meta:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table, Key=ddb_item(pk=pk, sk=sk),
                               ConsistentRead=True)
        return ddb_plain(got["Item"]) if "Item" in got else None

    # -- the sweeper's index ----------------------------------------------
    def pending_before(self, created_before: int) -> Iterator[str]:
        """Batch ids still pending that were created before the cutoff."""
        for shard in PENDING_SHARDS:
            pages = self.db.get_paginator("query").paginate(
                TableName=self.table, IndexName=PENDING_INDEX,
                KeyConditionExpression="gpk = :p AND gsk < :c",
                ExpressionAttributeValues=ddb_item(**{":p": f"P#{shard}",
                                                   ":c": f"{created_before:012d}"}))
            for page in pages:
                for it in page.get("Items", []):
                    yield ddb_plain(it)["pk"][3:]

    # -- heads and revisions --------------------------------------------
    @staticmethod
    def _version(file_id: str, it: dict[str, Any]) -> Version:
        return Version(file_id=file_id, revision=int(it["rev"]),
                       deleted=bool(it.get("deleted")), manifest_key=it.get("mkey"),
                       size=int(it.get("size", 0)), chunk_ids=_unpack(it.get("chunks")),
                       upload_id=it["upload"], device_id=it["device"],
                       committed=int(it["committed"]),
                       manifest_offset=None if it.get("moff") is None else int(it["moff"]),
                       manifest_length=None if it.get("mlen") is None else int(it["mlen"]),
                       expired_at=None if it.get("expired") is None else int(it["expired"]))

    def get_head(self, user_id: str, file_id: str) -> Version | None:
        it = self._get(f"F#{user_id}", file_id)
        return None if it is None else self._version(file_id, it)

    def get_revision(self, user_id: str, file_id: str, revision: int) -> Version | None:
        it = self._get(f"R#{user_id}#{file_id}", f"{revision:012d}")
        return None if it is None else self._version(file_id, it)

    def revisions(self, user_id: str, wanted: Mapping[str, int]) -> dict[str, Version]:
        """file id -> that revision (`wanted[file id]`), for those stored: one
        BatchGetItem per 100 (the bases an edit's chunk ranges name)."""
        keys = sorted(wanted.items())
        found: dict[str, Version] = {}
        for i in range(0, len(keys), 100):
            request = {self.table: {"Keys": [ddb_item(pk=f"R#{user_id}#{f}", sk=f"{rev:012d}")
                                             for f, rev in keys[i:i + 100]],
                                    "ConsistentRead": True}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                for raw in got["Responses"].get(self.table, []):
                    it = ddb_plain(raw)
                    file_id = it["pk"].rsplit("#", 1)[1]
                    found[file_id] = self._version(file_id, it)
                request = got.get("UnprocessedKeys") or {}
        return found

    def list_revisions(self, user_id: str, file_id: str, limit: int,
                       before: int | None = None) -> list[Version]:
        """Newest first."""
        top = f"{(before or 10**12) - 1:012d}"
        got = self.db.query(
            TableName=self.table, ScanIndexForward=False, Limit=limit,
            KeyConditionExpression="pk = :p AND sk <= :t",
            ExpressionAttributeValues=ddb_item(**{":p": f"R#{user_id}#{file_id}", ":t": top}))
        return [self._version(file_id, ddb_plain(it)) for it in got.get("Items", [])]

    # -- the fenced commit ------------------------------------------------
    def feed_head(self, user_id: str) -> int:
        it = self._get(f"S#{user_id}", "SEQ")
        return 0 if it is None else int(it["seq"])

    # -- the change feed --------------------------------------------------
    def changes(self, user_id: str, after: int, limit: int) -> list[Change]:
        got = self.db.query(
            TableName=self.table, Limit=limit, ConsistentRead=True,
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :z",
            ExpressionAttributeValues=ddb_item(**{":p": f"S#{user_id}",
                                               ":a": f"{after + 1:016d}", ":z": _SEQ_MAX}))
        out = []
        for raw in got.get("Items", []):
            it = ddb_plain(raw)
            if "changes" in it:  # a batch group's item: seqs first..sk
                first = int(it["first"])
                packed = bytes(getattr(it["changes"], "value", it["changes"]))
                out += [Change(first + k, f, rev, deleted)
                        for k, (f, rev, deleted) in enumerate(unpack_changes(packed))
                        if first + k > after]
            else:
                out.append(Change(int(it["sk"]), it["file"], int(it["rev"]),
                                  bool(it.get("deleted"))))
        # `Limit` counts items; a group's item holds up to 48 changes
        return out[:limit]

    # -- the chunk index ----------------------------------------------------
    def known_chunks(self, user_id: str, chunk_ids: Iterable[str],
                     consistent: bool = False) -> set[str]:
        """Chunks a committed version of this user already references.
        `consistent`: the commit's check (pack_commit.py), which must not
        trust an entry the retention job deleted a moment ago."""
        keys = [ddb_item(pk=f"C#{user_id}", sk=c) for c in sorted(set(chunk_ids))]
        return {ddb_plain(it)["sk"] for it in get_all(self.db, self.table, keys,
                                                      ProjectionExpression="sk",
                                                      ConsistentRead=consistent)}

    def remember_chunks(self, user_id: str, chunk_ids: Iterable[str]) -> None:
        """Record chunks verified to exist (chunks are immutable)."""
        put_all(self.db, self.table,
                [ddb_item(pk=f"C#{user_id}", sk=c) for c in sorted(set(chunk_ids))])
