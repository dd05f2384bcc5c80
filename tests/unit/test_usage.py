"""Metering through the real API and commit path (moto + fakeredis):
counters move in the commit's transaction, once per committed version,
whatever the events do; requests and egress are counted as URLs are issued."""
from __future__ import annotations

import secrets

from chalicelib.adapters.meta import ddb_plain
from chalicelib.core.ids import new_id
from tests.harness import BatchItem, Device, Harness
from tests.unit.bad_input import each, expect


def stored_truth(h: Harness, user_id: str) -> tuple[int, int]:
    """(Σ size, count) of every revision the table keeps: what the account stores."""
    items = [ddb_plain(it) for page in h.rt.dynamodb.get_paginator("query").paginate(
        TableName=h.rt.settings.table, KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": f"F#{user_id}"}}) for it in page["Items"]]
    total = count = 0
    for head in items:
        for rev in h.rt.meta.list_revisions(user_id, head["sk"], 1000):
            total, count = total + rev.size, count + 1
    return total, count


def usage(h: Harness, dev: Device, query: str = "") -> dict:  # type: ignore[type-arg]
    r = h.get(f"/v1/account/usage{query}", dev)
    assert r.status_code == 200, r.body
    return dict(r.json_body)


def test_a_new_account_has_used_nothing(fast: Harness) -> None:
    dev = fast.signup()
    got = usage(fast, dev)
    assert (got["stored_bytes"], got["versions"], got["put_requests"], got["get_requests"],
            got["egress_bytes"], got["byte_hours"]) == (0, 0, 0, 0, 0, 0)
    assert got["daily"] and got["to"] > got["from"]


def test_commits_count_once_under_duplicates(fast: Harness) -> None:
    dev, f, g = fast.signup(), new_id(), new_id()
    chunk = secrets.token_bytes(300)
    first = fast.stage(dev, f, 0, manifest=b"m" * 70, chunks=(chunk,))
    for _ in range(3):  # the event, twice more
        fast.commit(first.key)
    second = fast.stage(dev, f, 0, manifest=b"n" * 50)  # loses: a conflict stores nothing
    fast.commit(second.key)
    batch = fast.stage_batch(dev, [BatchItem(g, 0, b"b" * 40, (chunk,)),
                                   BatchItem(f, 1, b"c" * 30)])
    for _ in range(2):
        fast.commit(batch.key)
    got = usage(fast, dev)
    assert (got["stored_bytes"], got["versions_total"]) == stored_truth(fast, dev.user_id)
    assert got["stored_bytes"] == (70 + 300) + (40 + 300) + 30
    assert got["versions"] == 3
    # PUT URLs as issued: manifest + chunk; manifest (chunk known); bundle only
    assert got["put_requests"] == 2 + 1 + 1


def test_deletes_keep_history_and_gets_count_egress(fast: Harness) -> None:
    dev, f = fast.signup(), new_id()
    fast.commit(fast.stage(dev, f, 0, manifest=b"m" * 10, chunks=(b"x" * 90,)).key)
    assert fast.head(dev, f) is not None  # one GET: manifest + one chunk, 100 bytes
    r = fast.delete_file(dev, f, 1)
    fast.commit(f"staging/{dev.user_id}/{r.json_body['upload_id']}")
    fast.head(dev, f)  # a deleted head issues no URL
    got = usage(fast, dev)
    assert (got["stored_bytes"], got["versions"]) == (100, 2)
    assert (got["get_requests"], got["egress_bytes"]) == (2, 100)


def test_usage_rejects_bad_periods(fast: Harness) -> None:
    dev = fast.signup()
    each([("?from=x",), ("?from=100&to=50",), ("?from=0&to=99999999999",), ("?from=-5",),
          ("?to=" + "9" * 40,), ("?from=3600&to=3600",)],
         lambda q: expect(fast.get(f"/v1/account/usage{q}", dev), 400, "bad_request"))
    assert fast.get("/v1/account/usage", None).status_code == 401
