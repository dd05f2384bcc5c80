"""The global directory: account -> home region (a DynamoDB global table).

  pk = "H#{user}"   home (region name), url (its API), since (epoch s)

Written once per account, at sign-up, with a conditional put on the
*writer* replica (one region, SEALSYNC_DIRECTORY_REGION): conditional
writes are only serialized inside one region, so two regions claiming one
id concurrently must race on the same replica for exactly one to win.
Read from this region's own replica (eventually consistent, cheap); a miss
there is read again, strongly, from the writer, since a sign-up of a moment
ago may not have replicated yet.
"""
from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..core.errors import Unavailable


class Directory:
    def __init__(self, reader: Any, writer: Any, table: str) -> None:
        self.reader = reader  # this region's replica
        self.writer = writer  # the one replica every claim and move goes to
        self.table = table

    def claim(self, user_id: str, home: str, url: str | None, now: int) -> bool:
        """Record `user_id`'s home; False if the id is already homed anywhere."""
        item = {"pk": {"S": f"H#{user_id}"}, "home": {"S": home}, "since": {"N": str(now)}}
        if url:
            item["url"] = {"S": url}
        try:
            self.writer.put_item(TableName=self.table, Item=item,
                                 ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise Unavailable("the account directory is unavailable; try again") from exc
        except BotoCoreError as exc:  # the writer's region unreachable
            raise Unavailable("the account directory is unavailable; try again") from exc
        return True

    def home(self, user_id: str) -> str | None:
        """The account's home region, or None if it is not in the directory
        (an account from before regions, which lives where it always did)."""
        key = {"pk": {"S": f"H#{user_id}"}}
        try:
            got = self.reader.get_item(TableName=self.table, Key=key)
            if "Item" not in got and self.writer is not self.reader:
                got = self.writer.get_item(TableName=self.table, Key=key, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise Unavailable("the account directory is unavailable; try again") from exc
        item = got.get("Item")
        return None if item is None else str(item["home"]["S"])

    def move(self, user_id: str, old: str, new: str, url: str | None, now: int) -> bool:
        """Move an account's home from `old` to `new` (the operator's runbook,
        docs/OPERATIONS.md); False if its home is not `old` any more."""
        values: dict[str, Any] = {":old": {"S": old}, ":new": {"S": new},
                                  ":now": {"N": str(now)}, ":url": {"S": url or ""}}
        try:
            self.writer.update_item(
                TableName=self.table, Key={"pk": {"S": f"H#{user_id}"}},
                ConditionExpression="home = :old",
                UpdateExpression="SET home = :new, since = :now, #url = :url",
                ExpressionAttributeNames={"#url": "url"}, ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
