"""DynamoDB: upload records, file heads, revisions, the change feed, and the
fenced commit. One table, keyed `pk`/`sk`; a sparse GSI finds pending uploads.

Item layout (all ids are opaque hex; nothing here is plaintext):
  UP#{upload}      UP               upload record (TTL `expires_at`; `sig`: the
                                    device's signature, core/signatures.py)
  F#{user}         {file}           head: revision, deleted, manifest key
  R#{user}#{file}  {rev:012d}       one committed revision
  S#{user}         SEQ              the user's last feed seq
  S#{user}         {seq:016d}       feed entry: file, revision
  C#{user}         {chunk}          a chunk known to exist (size)
Batch records (also `UP#{batch}`), the heads they read and the groups they
commit are in adapters/batches.py.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ..core.batch import unpack_changes
from ..core.decide import PENDING, TERMINAL
from ..core.records import Change, UploadRecord, Version
from .usage import commit_actions

PENDING_INDEX = "pending"
PENDING_SHARDS = "0123456789abcdef"
_SEQ_MAX = "9" * 16
_ser = TypeSerializer()
_de = TypeDeserializer()


class FenceLost(Exception):
    """The head or the feed moved since we read it: read again, decide again."""


class AlreadyFinished(Exception):
    """Another handler already gave this upload its terminal state."""


def _pack(ids: Iterable[str]) -> bytes:
    return b"".join(bytes.fromhex(i) for i in ids)


def _unpack(raw: Any) -> tuple[str, ...]:
    data = bytes(getattr(raw, "value", raw) or b"")
    return tuple(data[i:i + 32].hex() for i in range(0, len(data), 32))


def ddb_item(**fields: Any) -> dict[str, Any]:
    return {k: _ser.serialize(v) for k, v in fields.items() if v is not None}


def ddb_plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _failed_items(exc: ClientError) -> list[bool]:
    reasons = exc.response.get("CancellationReasons") or []
    return [r.get("Code") == "ConditionalCheckFailed" for r in reasons]


class Meta:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table, Key=ddb_item(pk=pk, sk=sk),
                               ConsistentRead=True)
        return ddb_plain(got["Item"]) if "Item" in got else None

    # -- uploads ---------------------------------------------------------
    def create_upload(self, rec: UploadRecord, expires_at: int) -> None:
        item = ddb_item(pk=f"UP#{rec.upload_id}", sk="UP", user=rec.user_id,
                     device=rec.device_id, file=rec.file_id, base=rec.base_revision,
                     msize=rec.manifest_size, chunks=_pack(rec.chunk_ids),
                     size=rec.size, tomb=rec.tombstone, status=PENDING,
                     created=rec.created, expires_at=expires_at, sig=rec.signature,
                     gpk=f"P#{rec.upload_id[0]}", gsk=f"{rec.created:012d}")
        self.db.put_item(TableName=self.table, Item=item,
                         ConditionExpression="attribute_not_exists(pk)")

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        it = self._get(f"UP#{upload_id}", "UP")
        if it is None or it.get("kind") == "batch":  # a batch: adapters/batches.py
            return None
        return Meta._upload(upload_id, it)

    @staticmethod
    def _upload(upload_id: str, it: dict[str, Any]) -> UploadRecord:
        """An upload record from its item (adapters/batches.py reads it too)."""
        opt = {k: it.get(k) for k in ("revision", "winner")}
        return UploadRecord(
            upload_id=upload_id, user_id=it["user"], device_id=it["device"],
            file_id=it["file"], base_revision=int(it["base"]),
            manifest_size=int(it["msize"]), chunk_ids=_unpack(it.get("chunks")),
            size=int(it["size"]), tombstone=bool(it.get("tomb")),
            status=it["status"], created=int(it["created"]),
            revision=None if opt["revision"] is None else int(opt["revision"]),
            winner_revision=None if opt["winner"] is None else int(opt["winner"]),
            reason=it.get("reason"), manifest_key=it.get("mkey"),
            signature=None if it.get("sig") is None else bytes(getattr(it["sig"], "value",
                                                                       it["sig"])))

    def _finish_update(self, upload_id: str, status: str, now: int,
                       **fields: Any) -> dict[str, Any]:
        assert status in TERMINAL
        values = {k: v for k, v in {"status": status, "finished": now, **fields}.items()
                  if v is not None}
        sets = ", ".join(f"#{k} = :{k}" for k in values)
        return {
            "TableName": self.table, "Key": ddb_item(pk=f"UP#{upload_id}", sk="UP"),
            "UpdateExpression": f"SET {sets} REMOVE gpk, gsk",
            "ConditionExpression": "#status = :pending",
            "ExpressionAttributeNames": {f"#{k}": k for k in values},
            "ExpressionAttributeValues": {**ddb_item(**{f":{k}": v for k, v in values.items()}),
                                          ":pending": _ser.serialize(PENDING)},
        }

    def finish(self, upload_id: str, status: str, now: int, **fields: Any) -> None:
        """Give a pending upload its terminal state (conflict or rejected)."""
        try:
            self.db.update_item(**self._finish_update(upload_id, status, now, **fields))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadyFinished(upload_id) from exc
            raise

    def pending_before(self, created_before: int) -> Iterator[str]:
        """Upload ids still pending that were created before the cutoff."""
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
                       manifest_length=None if it.get("mlen") is None else int(it["mlen"]))

    def get_head(self, user_id: str, file_id: str) -> Version | None:
        it = self._get(f"F#{user_id}", file_id)
        return None if it is None else self._version(file_id, it)

    def get_revision(self, user_id: str, file_id: str, revision: int) -> Version | None:
        it = self._get(f"R#{user_id}#{file_id}", f"{revision:012d}")
        return None if it is None else self._version(file_id, it)

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

    def commit_accept(self, rec: UploadRecord, revision: int, manifest_key: str | None,
                      now: int, last: int | None = None, gc_gen: int | None = None) -> int:
        """Write head, revision, feed entry and upload result in ONE
        transaction, fenced on the head revision and the feed counter.
        `last` is the feed head if the caller knows it (read here if not).
        Returns the new feed seq. Raises FenceLost or AlreadyFinished."""
        user, file_id = rec.user_id, rec.file_id
        last = self.feed_head(user) if last is None else last
        seq = last + 1
        version = {"rev": revision, "deleted": rec.tombstone, "mkey": manifest_key,
                       "size": rec.size, "chunks": _pack(rec.chunk_ids), "upload": rec.upload_id,
                       "device": rec.device_id, "committed": now}
        head_cond = ({"ConditionExpression": "attribute_not_exists(pk)"}
                     if rec.base_revision == 0 else
                     {"ConditionExpression": "rev = :base",
                      "ExpressionAttributeValues": ddb_item(**{":base": rec.base_revision})})
        seq_cond = ({"ConditionExpression": "attribute_not_exists(pk)"} if last == 0 else
                    {"ConditionExpression": "seq = :last",
                     "ExpressionAttributeValues": ddb_item(**{":last": last})})
        new = {"ConditionExpression": "attribute_not_exists(pk)"}
        items = [
            {"Put": {"TableName": self.table, "Item": ddb_item(pk=f"F#{user}", sk=file_id,
                                                            **version), **head_cond}},
            {"Put": {"TableName": self.table,
                     "Item": ddb_item(pk=f"S#{user}", sk="SEQ", seq=seq), **seq_cond}},
            {"Put": {"TableName": self.table, **new,
                     "Item": ddb_item(pk=f"S#{user}", sk=f"{seq:016d}", file=file_id,
                                   rev=revision, deleted=rec.tombstone)}},
            {"Put": {"TableName": self.table, **new,
                     "Item": ddb_item(pk=f"R#{user}#{file_id}", sk=f"{revision:012d}",
                                   **version)}},
            {"Update": self._finish_update(rec.upload_id, "accepted", now, revision=revision,
                                           mkey=manifest_key, seq=seq)},
            # metering, exactly once; and the collector's fence (usage.commit_actions)
            *commit_actions(self.table, user, now, [rec.size], gc_gen),
        ]
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            failed = _failed_items(exc)
            if len(failed) > 4 and failed[4]:
                raise AlreadyFinished(rec.upload_id) from exc
            raise FenceLost(f"{user}/{file_id}") from exc
        return seq

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
    def known_chunks(self, user_id: str, chunk_ids: Iterable[str]) -> set[str]:
        """Chunks a committed version of this user already references."""
        wanted = sorted(set(chunk_ids))
        known: set[str] = set()
        for i in range(0, len(wanted), 100):
            keys = [ddb_item(pk=f"C#{user_id}", sk=c) for c in wanted[i:i + 100]]
            request = {self.table: {"Keys": keys, "ProjectionExpression": "sk"}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                known.update(ddb_plain(it)["sk"] for it in got["Responses"].get(self.table, []))
                request = got.get("UnprocessedKeys") or {}
        return known

    def remember_chunks(self, user_id: str, chunk_ids: Iterable[str]) -> None:
        """Record chunks verified to exist (chunks are immutable)."""
        unique = sorted(set(chunk_ids))
        for i in range(0, len(unique), 25):
            request = {self.table: [{"PutRequest": {"Item": ddb_item(pk=f"C#{user_id}", sk=c)}}
                                    for c in unique[i:i + 25]]}
            while request:
                got = self.db.batch_write_item(RequestItems=request)
                request = got.get("UnprocessedItems") or {}
