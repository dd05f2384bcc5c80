"""The local stack's moto patch (local.moto_patches.cache_moto_conditions): each
condition expression is parsed once, and still decides for every item and
every value on its own."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import table

from local.moto_patches import cache_moto_conditions


@pytest.fixture
def db() -> Iterator[Any]:
    cache_moto_conditions()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                  for n in ("pk", "sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield client


def put(db: Any, pk: str, rev: int, cond: str, values: dict[str, Any] | None = None) -> bool:
    try:
        db.put_item(TableName="t", Item={"pk": {"S": pk}, "sk": {"S": "x"},
                                         "rev": {"N": str(rev)}},
                    ConditionExpression=cond, **(
                        {"ExpressionAttributeValues": values} if values else {}))
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException"
        return False
    return True


def test_a_remembered_condition_still_decides_each_item_and_value(db: Any) -> None:
    assert getattr(table.get_filter_expression, "_sealsync", False)
    new = "attribute_not_exists(pk)"
    assert put(db, "a", 1, new) and put(db, "b", 1, new)
    assert not put(db, "a", 2, new)  # the same expression, an item that exists
    fenced = "rev = :base"
    assert not put(db, "a", 2, fenced, {":base": {"N": "7"}})
    assert put(db, "a", 2, fenced, {":base": {"N": "1"}})
    assert not put(db, "a", 3, fenced, {":base": {"N": "1"}})  # moved on: refused
    assert put(db, "a", 3, fenced, {":base": {"N": "2"}})
    items = {i["pk"]["S"]: i["rev"]["N"] for i in db.scan(TableName="t")["Items"]}
    assert items == {"a": "3", "b": "1"}
