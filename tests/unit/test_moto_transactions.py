"""The local stack's moto patch (local.moto_patches.snapshot_moto_transactions):
TransactWriteItems snapshots only the items it touches, and still writes
all or nothing."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb import models

from local.moto_patches import snapshot_moto_transactions

TABLE = "t"


@pytest.fixture
def db() -> Iterator[Any]:
    undo = snapshot_moto_transactions()
    try:
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                      for n in ("pk", "sk")],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                           {"AttributeName": "sk", "KeyType": "RANGE"}])
            yield client
    finally:
        undo()


def put(pk: str, v: str, cond: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": TABLE,
                          "Item": {"pk": {"S": pk}, "sk": {"S": "x"}, "v": {"S": v}}}
    if cond:
        op["ConditionExpression"] = cond
    return {"Put": op}


def bump(pk: str, v: str) -> dict[str, Any]:
    return {"Update": {"TableName": TABLE, "Key": {"pk": {"S": pk}, "sk": {"S": "x"}},
                       "UpdateExpression": "SET v = :v",
                       "ExpressionAttributeValues": {":v": {"S": v}}}}


def items(db: Any) -> dict[str, str]:
    return {i["pk"]["S"]: i["v"]["S"] for i in db.scan(TableName=TABLE)["Items"]}


def test_the_patch_is_installed_and_undone() -> None:
    before = models.DynamoDBBackend.transact_write_items
    undo = snapshot_moto_transactions()
    assert getattr(models.DynamoDBBackend.transact_write_items, "_sealsync", False) \
        or getattr(before, "_sealsync", False)
    undo()
    assert models.DynamoDBBackend.transact_write_items is before


def test_a_committed_transaction_writes_everything(db: Any) -> None:
    db.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "x"}, "v": {"S": "1"}})
    db.transact_write_items(TransactItems=[bump("a", "2"), put("b", "1")])
    assert items(db) == {"a": "2", "b": "1"}


def test_a_cancelled_transaction_writes_nothing(db: Any) -> None:
    db.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "x"}, "v": {"S": "1"}})
    db.put_item(TableName=TABLE, Item={"pk": {"S": "c"}, "sk": {"S": "x"}, "v": {"S": "1"}})
    # a is updated in place and b is created before c's condition fails
    with pytest.raises(db.exceptions.TransactionCanceledException):
        db.transact_write_items(TransactItems=[
            bump("a", "2"), put("b", "1"), put("c", "2", cond="attribute_not_exists(pk)")])
    assert items(db) == {"a": "1", "c": "1"}


def test_a_key_named_twice_writes_nothing(db: Any) -> None:
    db.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "x"}, "v": {"S": "1"}})
    with pytest.raises(db.exceptions.ClientError):
        db.transact_write_items(TransactItems=[bump("a", "2"), put("b", "1"), bump("a", "3")])
    assert items(db) == {"a": "1"}


def test_a_rollback_never_reverts_other_items(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another request writes item z while a transaction runs (simulated by a
    hook on its first write); the cancelled transaction must not undo z, as
    moto's whole-table restore would."""
    backend = models.dynamodb_backends["123456789012"]["us-east-1"]
    real_put = backend.put_item
    calls: list[str] = []

    def put_and_interleave(table_name: str, attrs: dict[str, Any], *a: Any, **kw: Any) -> Any:
        if not calls:
            calls.append("z")
            real_put(TABLE, {"pk": {"S": "z"}, "sk": {"S": "x"}, "v": {"S": "other"}})
        return real_put(table_name, attrs, *a, **kw)

    monkeypatch.setattr(backend, "put_item", put_and_interleave)
    with pytest.raises(db.exceptions.TransactionCanceledException):
        db.transact_write_items(TransactItems=[
            put("b", "1"), put("b2", "1", cond="attribute_exists(pk)")])
    assert calls == ["z"]
    assert items(db) == {"z": "other"}
