"""The local stack's moto speed-ups (local.moto_patches) change how fast moto
answers, never what it answers: the same queries give the same pages with
and without them."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.moto_server.werkzeug_app import DomainDispatcherApplication

from local.moto_patches import cache_moto_dispatch, query_one_partition

TABLE = "t"
keys = st.sampled_from(["a", "b", "c", "d"])
sorts = st.text("xyz", min_size=1, max_size=3)


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                                  for n in ("pk", "sk", "g", "r")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{
                "IndexName": "by-g", "Projection": {"ProjectionType": "ALL"},
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                              {"AttributeName": "sk", "KeyType": "RANGE"}]},
                {  # sparse, like the pending-uploads index: items without r are not in it
                "IndexName": "by-g-r", "Projection": {"ProjectionType": "KEYS_ONLY"},
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"},
                              {"AttributeName": "r", "KeyType": "RANGE"}]}])
        yield client


def pages(db: Any, query: dict[str, Any]) -> list[Any]:
    """Every page of a query, followed through LastEvaluatedKey."""
    out, start = [], None
    while True:
        got = db.query(**query, **({"ExclusiveStartKey": start} if start else {}))
        out.append((got["Items"], got.get("LastEvaluatedKey")))
        start = got.get("LastEvaluatedKey")
        if not start or len(out) > 50:
            return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(keys, sorts, keys, st.none() | sorts), max_size=30),
       pk=keys, cond=st.sampled_from(["", "= :s", "> :s", "begins_with"]), bound=sorts,
       limit=st.none() | st.integers(1, 5), forward=st.booleans(),
       index=st.sampled_from([None, "by-g", "by-g-r"]))
def test_query_answers_as_moto_does(db: Any, items: list[tuple[str, str, str, str | None]],
                                    pk: str, cond: str, bound: str, limit: int | None,
                                    forward: bool, index: str | None) -> None:
    for old in db.scan(TableName=TABLE)["Items"]:
        db.delete_item(TableName=TABLE, Key={"pk": old["pk"], "sk": old["sk"]})
    for p, s, g, r in items:
        db.put_item(TableName=TABLE, Item={"pk": {"S": p}, "sk": {"S": s}, "g": {"S": g},
                                           **({"r": {"S": r}} if r else {})})
    hash_name = "g" if index else "pk"
    range_name = "r" if index == "by-g-r" else "sk"
    expr = f"{hash_name} = :p"
    values = {":p": {"S": pk}}
    if cond == "begins_with":
        expr += f" AND begins_with({range_name}, :s)"
    elif cond:
        expr += f" AND {range_name} {cond}"
    if cond:
        values[":s"] = {"S": bound}
    query: dict[str, Any] = {"TableName": TABLE, "KeyConditionExpression": expr,
                             "ExpressionAttributeValues": values,
                             "ScanIndexForward": forward}
    if index:
        query["IndexName"] = index
    if limit:
        query["Limit"] = limit
    query_one_partition()()  # moto's own query, even if a server patched it before
    plain = pages(db, query)
    query_one_partition()  # left installed, as every local server has it
    assert pages(db, query) == plain


def test_the_query_patch_is_undone() -> None:
    from moto.dynamodb.models.table import Table

    undo = query_one_partition()
    assert getattr(Table.query, "_sealsync", None)
    original = Table.query._sealsync  # type: ignore[attr-defined]
    undo()
    assert (Table.query, Table.all_items) == original
    query_one_partition()


def test_dispatch_is_cached_per_host() -> None:
    cache_moto_dispatch()
    app = DomainDispatcherApplication(lambda service: None)  # type: ignore[arg-type,return-value]
    first = app.get_backend_for_host("dynamodb.us-east-1.amazonaws.com")
    assert first == "dynamodb"
    assert app.get_backend_for_host("s3.amazonaws.com") == "s3"
    assert app.get_backend_for_host("dynamodb.us-east-1.amazonaws.com") == first
    assert app.get_backend_for_host(None) is None
