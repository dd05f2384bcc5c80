"""The AWS and Redis calls one commit (and one batch of N) makes, counted with wrappers around
the real clients while the real handlers run, must equal the figures
deploy/cost_calls.py holds and deploy/cost.py prices. A code change that
adds a call fails here until the cost model (and docs/OPERATIONS.md) is
updated."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis

from app import on_commit_queue
from chalicelib.core.ids import new_id
from deploy import cost_calls
from tests.harness import BatchItem, Harness
from tests.unit.test_events import s3_event, s3_record, sqs_event


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[tuple[str, str]] = Counter()
        self.rru = self.wru = 0.0
        self.redis: Counter[str] = Counter()
        # calls and transaction actions on a batch's items (pk UP#...)
        self.record_reads = self.record_writes = 0

    def clear(self) -> None:
        self.aws.clear()
        self.rru = self.wru = 0.0
        self.redis.clear()
        self.record_reads = self.record_writes = 0

    def on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """botocore's before-call: fires for requests sent, not for presigning."""
        service = model.service_model.service_name
        self.aws[(service, model.name)] += 1
        if service == "dynamodb":  # the request as sent: a JSON body
            body = json.loads(params["body"])
            r, w = cost_calls.capacity_units(model.name, body)
            self.rru, self.wru = self.rru + r, self.wru + w
            self.count_record(model.name, body)

    def count_record(self, operation: str, body: dict[str, Any]) -> None:
        def is_record(key: dict[str, Any] | None) -> bool:
            return bool(key) and str(key.get("pk", {}).get("S", "")).startswith("UP#")

        read = {"GetItem": body.get("Key"),
                "Query": {"pk": body.get("ExpressionAttributeValues", {}).get(":pk", {})}}
        written = {"UpdateItem": body.get("Key"), "DeleteItem": body.get("Key"),
                   "PutItem": body.get("Item")}
        if operation in read and is_record(read[operation]):
            self.record_reads += 1
        elif operation in written and is_record(written[operation]):
            self.record_writes += 1
        elif operation == "TransactWriteItems":
            for action in body["TransactItems"]:
                (op, spec), = action.items()
                if op != "ConditionCheck" and is_record(spec.get("Key") or spec.get("Item")):
                    self.record_writes += 2  # transactional: twice the units

    def of(self, service: str) -> dict[str, int]:
        return {op: n for (s, op), n in self.aws.items() if s == service}


@pytest.fixture
def calls(fast: Harness, monkeypatch: pytest.MonkeyPatch) -> Calls:
    c = Calls()
    for client in (fast.rt.s3, fast.rt.dynamodb):
        client.meta.events.register("before-call.*.*", c.on_call)
    real_exec, real_pipe = redis.Redis.execute_command, redis.client.Pipeline.execute

    def execute_command(self: Any, *args: Any, **kw: Any) -> Any:
        c.redis[str(args[0]).upper()] += 1
        return real_exec(self, *args, **kw)

    def pipeline_execute(self: Any, *args: Any, **kw: Any) -> Any:
        for command, _ in self.command_stack:
            c.redis[str(command[0]).upper()] += 1
        return real_pipe(self, *args, **kw)

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline_execute)
    return c


def test_one_small_file_commit_makes_the_calls_the_cost_model_prices(
        fast: Harness, calls: Calls) -> None:
    """A user's commit after their first: the feed-head hint is in Redis."""
    dev = fast.signup()
    first = fast.stage(dev, new_id(), 0, b"manifest", (b"first chunk",))
    on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(first.key)))), None)
    calls.aws.clear()
    calls.rru = calls.wru = 0.0
    calls.redis.clear()

    up = fast.stage(dev, new_id(), 0, b"manifest", (b"one chunk",))  # API + client PUTs
    client_puts = calls.of("s3").pop("PutObject")
    calls.aws.pop(("s3", "PutObject"))
    result = on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(up.key)))), None)
    assert result == {"batchItemFailures": []}
    assert fast.status(dev, up.upload_id)["status"] == "accepted"

    assert client_puts == 2  # the chunk and the manifest, both by the client
    assert calls.of("s3") == cost_calls.S3_CALLS
    assert calls.of("dynamodb") == cost_calls.DYNAMODB_CALLS
    assert {"rru": calls.rru, "wru": calls.wru} == cost_calls.DYNAMODB_UNITS
    assert sum(calls.redis.values()) == cost_calls.REDIS_COMMANDS, calls.redis
    assert set(calls.aws) <= {("s3", op) for op in cost_calls.S3_CALLS} | {
        ("dynamodb", op) for op in cost_calls.DYNAMODB_CALLS}


def test_the_waiting_poll_adds_blpop_and_its_relay(fast: Harness, calls: Calls) -> None:
    fast.rt.waker.wake("topic")  # a commit woke the topic
    calls.redis.clear()
    assert fast.rt.waker.wait("topic", 1) == b"1"
    assert sum(calls.redis.values()) == cost_calls.REDIS_POLL_COMMANDS, calls.redis


@pytest.mark.parametrize("n", [1, 49, 100])
def test_a_batch_of_small_files_makes_the_calls_the_cost_model_prices(
        fast: Harness, calls: Calls, n: int) -> None:
    """N new small files (inline: no chunks) in one batch, the user's first
    batch already committed (the feed-head hint is in Redis): POST
    /v1/batches, the bundle PUT, its S3 event through the queue handler, and
    GET /v1/batches/{id}. 1, 49 and 100 entries tell apart the fixed part,
    the part per group of 48 (2 groups at 49, 3 at 100), per page of 100
    heads and per entry."""
    # A lease renewal (one script) only comes after a third of the lock TTL
    # (3.3 s) of committing: not on AWS, where 1,000 files take ~0.6 s, but
    # moto on a loaded machine can be that slow. Kept out of the count.
    fast.rt.locks.ttl_ms = 3_600_000
    dev = fast.signup()
    first = fast.stage_batch(dev, [BatchItem(new_id(), 0)])
    on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(first.key)))), None)
    calls.clear()

    batch = fast.stage_batch(dev, [BatchItem(new_id(), 0) for _ in range(n)])
    client_puts = calls.of("s3").pop("PutObject")
    calls.aws.pop(("s3", "PutObject"))
    result = on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(batch.key)))), None)
    assert result == {"batchItemFailures": []}
    got = fast.batch(dev, batch.batch_id)
    assert got["status"] == "finished"
    assert [e["status"] for e in got["entries"]] == ["accepted"] * n

    assert client_puts == 1  # the bundle, whatever N
    assert calls.of("s3") == cost_calls.BATCH_S3_CALLS
    assert calls.of("dynamodb") == cost_calls.batch_dynamodb_calls(n)
    assert {"rru": calls.rru, "wru": calls.wru} == cost_calls.batch_units(n)
    assert sum(calls.redis.values()) == cost_calls.batch_redis_commands(n), calls.redis
    assert calls.record_reads == (cost_calls.BATCH_RECORD_READS_BEFORE
                                  + cost_calls.BATCH_RECORD_READS_AFTER)
    assert calls.record_writes == (cost_calls.BATCH_RECORD_WRITES_FIXED
                                   + cost_calls.BATCH_RECORD_WRITES_PER_GROUP
                                   * cost_calls.batch_groups(n))
    items = fast.rt.dynamodb.query(
        TableName=fast.rt.settings.table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"UP#{batch.batch_id}"}})["Items"]
    size = Counter[str]()
    for it in items:
        kind = {"UP": "state", "E": "entries"}.get(it["sk"]["S"], "groups")
        size[kind] += cost_calls.item_bytes(it)
    model = cost_calls.batch_record_bytes(n)
    # a number's size follows its significant digits (DynamoDB's rule), so the
    # state's timestamps make it a few bytes smaller when they end in zeros
    assert size["state"] == pytest.approx(model["state"], abs=8)
    assert size["entries"] == pytest.approx(model["entries"], rel=0.02)
    assert size["groups"] == pytest.approx(model["groups"], rel=0.02)
    assert all(cost_calls.item_bytes(it) <= 1024 for it in items if it["sk"]["S"].startswith("G#"))
    feed = fast.rt.dynamodb.query(
        TableName=fast.rt.settings.table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"S#{dev.user_id}"}})["Items"]
    f0, fe = cost_calls.BATCH_FEED_BYTES
    mine = sorted(cost_calls.item_bytes(it) for it in feed
                  if it["sk"]["S"] not in ("SEQ", f"{1:016d}"))
    assert mine == sorted(f0 + fe * min(cost_calls.BATCH_GROUP, n - k * cost_calls.BATCH_GROUP)
                          for k in range(cost_calls.batch_groups(n)))
