"""DynamoDB: what the retention job reads and the one transaction it writes
(core/retention.py has the rule; chalicelib/retention.py the job).

  R#{user}#{file}  {rev:012d}   `expired` (epoch s) set, `chunks` removed
  C#{user}         {chunk}      deleted for chunks no retained revision of
                                the file names (the collector looks again)
  XRUN             CURSOR       where the last run stopped (user, file)
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..core.gc import DELETE, SCAN
from ..core.retention import Revision
from .meta import _unpack, ddb_item, ddb_plain
from .usage import expiry_actions

_CURSOR = {"pk": "XRUN", "sk": "CURSOR"}
# + the head's check, the collector's check and the two metering actions: 100
MAX_PER_TRANSACTION = 96


class RetentionStore:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def _query(self, user_id: str, file_id: str, projection: str) -> Iterator[dict[str, Any]]:
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, ConsistentRead=True, ProjectionExpression=projection,
            ExpressionAttributeNames={"#s": "size"},
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=ddb_item(**{":p": f"R#{user_id}#{file_id}"}))
        for page in pages:
            for raw in page.get("Items", []):
                yield ddb_plain(raw)

    def revisions(self, user_id: str, file_id: str) -> list[Revision]:
        """Every revision item of the file, without its chunk list."""
        return [Revision(int(it["rev"]), int(it["committed"]), int(it.get("size", 0)),
                         expired="expired" in it)
                for it in self._query(user_id, file_id, "rev, committed, #s, expired")]

    def chunk_lists(self, user_id: str, file_id: str) -> dict[int, tuple[str, ...]]:
        """revision -> the chunks it names (an expired one names none)."""
        return {int(it["rev"]): _unpack(it.get("chunks"))
                for it in self._query(user_id, file_id, "rev, chunks, #s")}

    def expire(self, user_id: str, file_id: str, head: int, revisions: Sequence[Revision],
               now: int) -> bool:
        """ONE transaction: each revision marked expired with its chunk list
        removed, IF it exists and is not expired yet; the head checked to be
        past all of them (heads only move forward: belt and braces); the
        user's collection checked NOT to be between a doom and its deletes
        (its scan counts on every revision that existed at the doom still
        naming its chunks: a commit that trusted a known chunk relies on
        that); the usage TOTAL and hour bucket taken down by their sizes.
        Two runs racing, or one run twice, take a revision off once: the
        loser's transaction is cancelled and writes nothing. False when
        cancelled."""
        assert 0 < len(revisions) <= MAX_PER_TRANSACTION
        top = max(r.revision for r in revisions)
        assert top < head, "the head never expires"
        items: list[dict[str, Any]] = [{"Update": {
            "TableName": self.table,
            "Key": ddb_item(pk=f"R#{user_id}#{file_id}", sk=f"{r.revision:012d}"),
            "UpdateExpression": "SET expired = :now REMOVE chunks",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(expired)",
            "ExpressionAttributeValues": ddb_item(**{":now": now})}} for r in revisions]
        items.append({"ConditionCheck": {
            "TableName": self.table, "Key": ddb_item(pk=f"F#{user_id}", sk=file_id),
            "ConditionExpression": "rev > :top",
            "ExpressionAttributeValues": ddb_item(**{":top": top})}})
        items.append({"ConditionCheck": {
            "TableName": self.table, "Key": ddb_item(pk=f"G#{user_id}", sk="GC"),
            "ConditionExpression": "attribute_not_exists(pk) OR "
                                   "(#phase <> :scan AND #phase <> :delete)",
            "ExpressionAttributeNames": {"#phase": "phase"},
            "ExpressionAttributeValues": ddb_item(**{":scan": SCAN, ":delete": DELETE})}})
        items += expiry_actions(self.table, user_id, now, [r.size for r in revisions])
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            return False
        return True

    def unindex(self, user_id: str, chunk_ids: Iterable[str]) -> None:
        """Forget chunks in the chunk index (25 deletes per call)."""
        unique = sorted(set(chunk_ids))
        for i in range(0, len(unique), 25):
            request = {self.table: [{"DeleteRequest": {"Key": ddb_item(pk=f"C#{user_id}", sk=c)}}
                                    for c in unique[i:i + 25]]}
            while request:
                got = self.db.batch_write_item(RequestItems=request)
                request = got.get("UnprocessedItems") or {}

    # -- where the last run stopped -------------------------------------------------
    def cursor(self) -> tuple[str, str]:
        got = self.db.get_item(TableName=self.table, Key=ddb_item(**_CURSOR))
        it = ddb_plain(got.get("Item") or {})
        return str(it.get("user", "")), str(it.get("file", ""))

    def save_cursor(self, user_id: str, file_id: str) -> None:
        self.db.put_item(TableName=self.table,
                         Item=ddb_item(**_CURSOR, user=user_id, file=file_id))
