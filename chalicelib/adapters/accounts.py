"""DynamoDB: accounts and devices. The server keeps a salted verifier of the
client's derived auth secret and the client's public KDF parameters (a salt),
never anything that could derive a content key.

  A#{user}  ACCOUNT      salt, verifier, kdf (opaque client string)
Devices and the account's public signing key: adapters/devices.py.
"""
from __future__ import annotations

from typing import Any

from .meta import ddb_item, ddb_plain


class Accounts:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def create(self, user_id: str, salt: bytes, verifier: bytes, kdf: str,
               now: int) -> None:
        self.db.put_item(
            TableName=self.table, ConditionExpression="attribute_not_exists(pk)",
            Item=ddb_item(pk=f"A#{user_id}", sk="ACCOUNT", salt=salt,
                       verifier=verifier, kdf=kdf, created=now))

    def get(self, user_id: str) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table,
                               Key=ddb_item(pk=f"A#{user_id}", sk="ACCOUNT"))
        if "Item" not in got:
            return None
        it = ddb_plain(got["Item"])
        return {"salt": bytes(it["salt"]), "verifier": bytes(it["verifier"]),
                "kdf": it["kdf"]}
