"""DynamoDB: the usage counters core/metering.py reads.

  U#{user}  TOTAL          b (stored bytes now), v (versions kept)
  U#{user}  H#{hour:012d}  db, bs, v, p (PUT URLs), g (GET URLs), e (egress bytes)

Stored bytes and versions move ONLY inside the commit's own fenced
transaction (`commit_actions`, appended by
batches.commit_group): a duplicate or late event cannot commit twice, so it
cannot count twice; and inside the expiry's transaction (`expiry_actions`,
adapters/retention_store.py), conditioned on the revision not being expired
yet, so it cannot take off twice. Requests and egress are counted when the API issues
the URLs (`count_requests`), one ADD per API call.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from ..core.metering import Bucket, CommitDelta, commit_delta, expiry_delta, hour_of

_ser, _de = TypeSerializer(), TypeDeserializer()


def ddb_item(**fields: Any) -> dict[str, Any]:  # meta.py's, without importing it (a cycle)
    return {k: _ser.serialize(v) for k, v in fields.items()}


def ddb_plain(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _de.deserialize(v) for k, v in item.items()}


def _add(table: str, pk: str, sk: str, fields: dict[str, int]) -> dict[str, Any]:
    """An UpdateItem that ADDs each field (creating the item if absent)."""
    used = dict(fields)
    return {"TableName": table, "Key": ddb_item(pk=pk, sk=sk),
            "UpdateExpression": "ADD " + ", ".join(f"#{k} :{k}" for k in used),
            "ExpressionAttributeNames": {f"#{k}": k for k in used},
            "ExpressionAttributeValues": ddb_item(**{f":{k}": v for k, v in used.items()})}


def commit_actions(table: str, user_id: str, at: float, sizes: Iterable[int],
                   gc_gen: int | None = None) -> list[dict[str, Any]]:
    """The two transaction actions that meter committing versions of these
    sizes: the TOTAL and the hour bucket. Part of the caller's transaction,
    so they happen exactly when the versions are committed.

    `gc_gen`: the garbage collector's generation the commit read before it
    checked chunks the index did not know (adapters/gc_store.py). The TOTAL
    update is then conditioned on it, so a collector that doomed objects
    since makes the whole transaction fail (FenceLost) and the commit checks
    its chunks again: the fence costs a condition, not an action."""
    delta: CommitDelta = commit_delta(at, sizes)
    hour = hour_of(delta.at)
    total = _add(table, f"U#{user_id}", "TOTAL", {"b": delta.bytes_delta, "v": delta.versions})
    if gc_gen is not None:
        total["ExpressionAttributeNames"]["#gc"] = "gc"
        if gc_gen == 0:
            total["ConditionExpression"] = "attribute_not_exists(#gc)"
        else:
            total["ConditionExpression"] = "#gc = :gc"
            total["ExpressionAttributeValues"].update(ddb_item(**{":gc": gc_gen}))
    return [
        {"Update": total},
        {"Update": _add(table, f"U#{user_id}", f"H#{hour:012d}", delta.bucket_fields())},
    ]


def expiry_actions(table: str, user_id: str, at: float,
                   sizes: Iterable[int]) -> list[dict[str, Any]]:
    """The two actions that take expiring versions of these sizes off the
    TOTAL and the hour bucket (byte-hours stay exact: the bucket gets the
    negative delta and its byte-seconds). Part of the expiry's transaction,
    which is conditioned on each revision not being expired yet, so a
    revision is taken off once however often the job runs. No gc fence:
    an expiry references no chunk."""
    delta = expiry_delta(at, sizes)
    fields = {k: v for k, v in delta.bucket_fields().items() if k != "v"}
    return [
        {"Update": _add(table, f"U#{user_id}", "TOTAL",
                        {"b": delta.bytes_delta, "v": delta.versions})},
        {"Update": _add(table, f"U#{user_id}", f"H#{hour_of(delta.at):012d}", fields)},
    ]


COMMIT_ACTIONS = 2  # len(commit_actions(...)): counted in every commit's transaction


class Usage:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def count_requests(self, user_id: str, at: float, puts: int = 0, gets: int = 0,
                       egress: int = 0) -> None:
        """URLs the API just issued: one ADD on the hour's bucket."""
        if puts or gets or egress:
            self.db.update_item(**_add(self.table, f"U#{user_id}", f"H#{hour_of(at):012d}",
                                       {"p": puts, "g": gets, "e": egress}))

    def total(self, user_id: str) -> tuple[int, int]:
        """(stored bytes, versions kept) now."""
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"U#{user_id}", sk="TOTAL"))
        it = ddb_plain(got.get("Item") or {})
        return int(it.get("b", 0)), int(it.get("v", 0))

    def buckets(self, user_id: str, since: int) -> list[Bucket]:
        """Every hour bucket at or after `since`, oldest first."""
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, ConsistentRead=True,
            KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :z",
            ExpressionAttributeValues=ddb_item(**{":p": f"U#{user_id}",
                                                  ":a": f"H#{hour_of(since):012d}",
                                                  ":z": "H#" + "9" * 12}))
        out = []
        for page in pages:
            for raw in page.get("Items", []):
                it = ddb_plain(raw)
                out.append(Bucket(hour=int(it["sk"][2:]), bytes_delta=int(it.get("db", 0)),
                                  byte_seconds=int(it.get("bs", 0)),
                                  versions=int(it.get("v", 0)), puts=int(it.get("p", 0)),
                                  gets=int(it.get("g", 0)), egress=int(it.get("e", 0))))
        return out
