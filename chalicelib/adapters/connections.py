"""DynamoDB: where a user's devices can be reached. One partition per user,
so the commit finds every WebSocket connection and mobile endpoint of the
user in ONE query.

  N#{user}   W#{connection}   a live WebSocket connection: device, endpoint
                              (the management API it belongs to); TTL
  N#{user}   P#{device}       a mobile push registration: platform, SNS
                              endpoint ARN, enabled
  WC#{conn}  WC               connection -> user, device (disconnect and
                              message events carry only the connection id)

API Gateway closes a WebSocket after 2 hours at most, so a connection item
expires after that even if its $disconnect never ran (DynamoDB TTL deletes
lazily, so reads also skip expired items).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .meta import ddb_item, ddb_plain

CONNECTION_TTL_S = 2 * 3600 + 300
MAX_TARGETS = 100  # connections + registrations read per commit (bounds fan-out)


@dataclass(frozen=True)
class Connection:
    connection_id: str
    device_id: str
    endpoint: str


@dataclass(frozen=True)
class MobileTarget:
    device_id: str
    platform: str
    endpoint_arn: str


@dataclass(frozen=True)
class Targets:
    connections: list[Connection]
    mobiles: list[MobileTarget]


class Registry:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    # -- WebSocket connections ------------------------------------------------
    def add_connection(self, user_id: str, device_id: str, connection_id: str,
                       endpoint: str, now: int) -> None:
        expires = now + CONNECTION_TTL_S
        self.db.transact_write_items(TransactItems=[
            {"Put": {"TableName": self.table, "Item": ddb_item(
                pk=f"N#{user_id}", sk=f"W#{connection_id}", device=device_id,
                endpoint=endpoint, connected=now, expires_at=expires)}},
            {"Put": {"TableName": self.table, "Item": ddb_item(
                pk=f"WC#{connection_id}", sk="WC", user=user_id, device=device_id,
                expires_at=expires)}},
        ])

    def connection_owner(self, connection_id: str) -> tuple[str, str] | None:
        """(user, device) of a registered connection, or None."""
        got = self.db.get_item(TableName=self.table,
                               Key=ddb_item(pk=f"WC#{connection_id}", sk="WC"))
        if "Item" not in got:
            return None
        it = ddb_plain(got["Item"])
        return it["user"], it["device"]

    def remove_connection(self, connection_id: str, user_id: str | None = None) -> None:
        """Forget a connection (idempotent)."""
        if user_id is None:
            owner = self.connection_owner(connection_id)
            if owner is None:
                return
            user_id = owner[0]
        self.db.delete_item(TableName=self.table,
                            Key=ddb_item(pk=f"N#{user_id}", sk=f"W#{connection_id}"))
        self.db.delete_item(TableName=self.table,
                            Key=ddb_item(pk=f"WC#{connection_id}", sk="WC"))

    # -- mobile registrations -------------------------------------------------
    def put_mobile(self, user_id: str, device_id: str, platform: str, endpoint_arn: str,
                   now: int) -> None:
        self.db.put_item(TableName=self.table, Item=ddb_item(
            pk=f"N#{user_id}", sk=f"P#{device_id}", platform=platform,
            arn=endpoint_arn, enabled=True, updated=now))

    def get_mobile(self, user_id: str, device_id: str) -> MobileTarget | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"N#{user_id}", sk=f"P#{device_id}"))
        if "Item" not in got:
            return None
        it = ddb_plain(got["Item"])
        return MobileTarget(device_id, it["platform"], it["arn"])

    def mobile_enabled(self, user_id: str, device_id: str) -> bool | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"N#{user_id}", sk=f"P#{device_id}"))
        return bool(ddb_plain(got["Item"])["enabled"]) if "Item" in got else None

    def disable_mobile(self, user_id: str, device_id: str) -> None:
        """Stop pushing to an endpoint that failed; a new registration of
        the device enables it again."""
        self.db.update_item(
            TableName=self.table, Key=ddb_item(pk=f"N#{user_id}", sk=f"P#{device_id}"),
            UpdateExpression="SET enabled = :f", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues=ddb_item(**{":f": False}))

    def remove_mobile(self, user_id: str, device_id: str) -> None:
        self.db.delete_item(TableName=self.table,
                            Key=ddb_item(pk=f"N#{user_id}", sk=f"P#{device_id}"))

    # -- what a commit reads ---------------------------------------------------
    def targets(self, user_id: str, now: int) -> Targets:
        """Every live connection and enabled mobile endpoint of a user."""
        got = self.db.query(
            TableName=self.table, Limit=MAX_TARGETS, ConsistentRead=True,
            KeyConditionExpression="pk = :p", ExpressionAttributeValues=ddb_item(
                **{":p": f"N#{user_id}"}))
        conns, mobiles = [], []
        for raw in got.get("Items", []):
            it = ddb_plain(raw)
            sk = str(it["sk"])
            if sk.startswith("W#") and int(it.get("expires_at", 0)) > now:
                conns.append(Connection(sk[2:], it["device"], it["endpoint"]))
            elif sk.startswith("P#") and it.get("enabled"):
                mobiles.append(MobileTarget(sk[2:], it["platform"], it["arn"]))
        return Targets(conns, mobiles)
