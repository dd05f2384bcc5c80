"""The AWS and Redis calls one commit (and one batch of N) makes, counted with wrappers around
the real clients while the real handlers run, must equal the figures
deploy/cost.py prices. A code change that adds a call fails here until the
cost model (and docs/OPERATIONS.md) is updated."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
import redis

from app import on_commit_queue
from chalicelib.core.ids import new_id
from deploy import cost
from tests.harness import BatchItem, Harness
from tests.unit.test_events import s3_event, s3_record, sqs_event


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[tuple[str, str]] = Counter()
        self.rru = self.wru = 0.0
        self.redis: Counter[str] = Counter()
        # calls and transaction actions on a batch record (pk UP#...)
        self.record_reads = self.record_writes = 0
        self.record_created = 0  # bytes of the record PutItem wrote

    def clear(self) -> None:
        self.aws.clear()
        self.rru = self.wru = 0.0
        self.redis.clear()
        self.record_reads = self.record_writes = 0
        self.record_created = 0  # bytes of the record PutItem wrote

    def on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """botocore's before-call: fires for requests sent, not for presigning."""
        service = model.service_model.service_name
        self.aws[(service, model.name)] += 1
        if service == "dynamodb":  # the request as sent: a JSON body
            body = json.loads(params["body"])
            r, w = cost.capacity_units(model.name, body)
            self.rru, self.wru = self.rru + r, self.wru + w
            self.count_record(model.name, body)

    def count_record(self, operation: str, body: dict[str, Any]) -> None:
        def is_record(key: dict[str, Any] | None) -> bool:
            return bool(key) and str(key.get("pk", {}).get("S", "")).startswith("UP#")

        if operation == "GetItem" and is_record(body.get("Key")):
            self.record_reads += 1
        elif operation in ("UpdateItem", "DeleteItem") and is_record(body.get("Key")):
            self.record_writes += 1
        elif operation == "PutItem" and is_record(body.get("Item")):
            self.record_writes += 1
            self.record_created = item_bytes(body["Item"])
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
    assert calls.of("s3") == cost.S3_CALLS
    assert calls.of("dynamodb") == cost.DYNAMODB_CALLS
    assert {"rru": calls.rru, "wru": calls.wru} == cost.DYNAMODB_UNITS
    assert sum(calls.redis.values()) == cost.REDIS_COMMANDS, calls.redis
    assert set(calls.aws) <= {("s3", op) for op in cost.S3_CALLS} | {
        ("dynamodb", op) for op in cost.DYNAMODB_CALLS}


def test_the_waiting_poll_adds_blpop_and_its_relay(fast: Harness, calls: Calls) -> None:
    fast.rt.waker.wake("topic")  # a commit woke the topic
    calls.redis.clear()
    assert fast.rt.waker.wait("topic", 1) == b"1"
    assert sum(calls.redis.values()) == cost.REDIS_POLL_COMMANDS, calls.redis


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules (names + values; numbers about
    1 byte per 2 digits + 1; maps and lists 3 bytes + 1 per element)."""
    def value(v: dict[str, Any]) -> int:
        (t, x), = v.items()
        if t in ("S", "B"):
            return len(x.encode() if t == "S" else x if isinstance(x, bytes) else x)
        if t == "N":
            return (len(x.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
        if t in ("BOOL", "NULL"):
            return 1
        if t == "M":
            return 3 + sum(len(k) + value(w) + 1 for k, w in x.items())
        if t == "L":
            return 3 + sum(value(w) + 1 for w in x)
        return sum(len(w) for w in x)  # sets
    return sum(len(k) + value(v) for k, v in item.items())


@pytest.mark.parametrize("n", [1, 33, 100])
def test_a_batch_of_small_files_makes_the_calls_the_cost_model_prices(
        fast: Harness, calls: Calls, n: int) -> None:
    """N new small files (inline: no chunks) in one batch, the user's first
    batch already committed (the feed-head hint is in Redis): POST
    /v1/batches, the bundle PUT, its S3 event through the queue handler, and
    GET /v1/batches/{id}. 1, 33 and 100 entries tell apart the fixed part,
    the part per group of 32 (2 groups at 33), per page of 100 heads and per
    entry."""
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
    assert calls.of("s3") == cost.BATCH_S3_CALLS
    assert calls.of("dynamodb") == cost.batch_dynamodb_calls(n)
    assert {"rru": calls.rru, "wru": calls.wru} == cost.batch_units(n)
    assert sum(calls.redis.values()) == cost.batch_redis_commands(n), calls.redis
    assert calls.record_reads == (cost.BATCH_RECORD_READS_CREATED
                                  + cost.BATCH_RECORD_READS_FINISHED)
    assert calls.record_writes == cost.BATCH_RECORD_WRITES_FIXED + 2 * cost.batch_groups(n)
    record = fast.rt.dynamodb.get_item(
        TableName=fast.rt.settings.table, Key={"pk": {"S": f"UP#{batch.batch_id}"},
                                               "sk": {"S": "UP"}})["Item"]
    (c0, ce), (f0, fe) = cost.BATCH_RECORD_BYTES_CREATED, cost.BATCH_RECORD_BYTES_FINISHED
    assert calls.record_created == pytest.approx(c0 + ce * n, rel=0.02)
    assert item_bytes(record) == pytest.approx(f0 + fe * n, rel=0.02)
