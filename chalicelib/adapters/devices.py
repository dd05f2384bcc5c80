"""DynamoDB: the account's signing key and its devices' keys (core/signatures.py).

  A#{user}  ACCOUNT      ... skey: the account's Ed25519 public key (set once)
  A#{user}  D#{device}   created, key (Ed25519 public, 32 bytes), name (sealed
                         by the client: ciphertext only), revoked (epoch s)

A revoked device's item stays (its id can never be enrolled again, and
`GET /v1/devices` shows when it was revoked). A device enrolled before device
keys has no `key`: it can read, never write, until it enrols again.
"""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from ..core.signatures import Device
from .meta import ddb_item, ddb_plain

MAX_LISTED = 1000


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _bytes(raw: Any) -> bytes | None:
    return None if raw is None else bytes(getattr(raw, "value", raw))


def _device(it: dict[str, Any]) -> Device:
    revoked = it.get("revoked")
    return Device(str(it["sk"])[2:], _bytes(it.get("key")),
                  None if revoked is None else int(revoked), int(it.get("created", 0)),
                  _bytes(it.get("name")) or b"")


class Devices:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    # -- the account's signing key ---------------------------------------------
    def signing_key(self, user_id: str) -> bytes | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"A#{user_id}", sk="ACCOUNT"),
                               ProjectionExpression="skey")
        return _bytes(ddb_plain(got.get("Item") or {}).get("skey"))

    def set_signing_key(self, user_id: str, key: bytes) -> bool:
        """Register the account's key if it has none yet (trust on first use,
        proved by the auth key); False if another key is already there."""
        try:
            self.db.update_item(
                TableName=self.table, Key=ddb_item(pk=f"A#{user_id}", sk="ACCOUNT"),
                UpdateExpression="SET skey = :k",
                ConditionExpression="attribute_exists(pk) AND "
                                    "(attribute_not_exists(skey) OR skey = :k)",
                ExpressionAttributeValues=ddb_item(**{":k": key}))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    # -- devices -------------------------------------------------------------------
    def register(self, user_id: str, device: Device) -> bool:
        """Add a device; False if its id was ever used in this account."""
        try:
            self.db.put_item(
                TableName=self.table, ConditionExpression="attribute_not_exists(pk)",
                Item=ddb_item(pk=f"A#{user_id}", sk=f"D#{device.device_id}",
                              created=device.created, key=device.public_key,
                              name=device.name or None))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def get(self, user_id: str, device_id: str) -> Device | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"A#{user_id}", sk=f"D#{device_id}"))
        return None if "Item" not in got else _device(ddb_plain(got["Item"]))

    def count(self, user_id: str) -> int:
        got = self.db.query(TableName=self.table, Select="COUNT",
                            KeyConditionExpression="pk = :p AND begins_with(sk, :d)",
                            ExpressionAttributeValues=ddb_item(**{":p": f"A#{user_id}",
                                                                  ":d": "D#"}))
        return int(got.get("Count", 0))

    def list(self, user_id: str) -> list[Device]:
        got = self.db.query(TableName=self.table, ConsistentRead=True, Limit=MAX_LISTED,
                            KeyConditionExpression="pk = :p AND begins_with(sk, :d)",
                            ExpressionAttributeValues=ddb_item(**{":p": f"A#{user_id}",
                                                                  ":d": "D#"}))
        return [_device(ddb_plain(it)) for it in got.get("Items", [])]

    def revoke(self, user_id: str, device_id: str, now: int) -> bool:
        """Mark a device revoked; False if there is no such device. Revoking
        twice keeps the first time."""
        try:
            self.db.update_item(
                TableName=self.table, Key=ddb_item(pk=f"A#{user_id}", sk=f"D#{device_id}"),
                UpdateExpression="SET revoked = if_not_exists(revoked, :t)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=ddb_item(**{":t": now}))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True
