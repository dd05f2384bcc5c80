"""The AWS and Redis calls one commit makes, counted with wrappers around
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
from tests.harness import Harness
from tests.unit.test_events import s3_event, s3_record, sqs_event


class Calls:
    def __init__(self) -> None:
        self.aws: Counter[tuple[str, str]] = Counter()
        self.rru = self.wru = 0.0
        self.redis: Counter[str] = Counter()

    def on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        """botocore's before-call: fires for requests sent, not for presigning."""
        service = model.service_model.service_name
        self.aws[(service, model.name)] += 1
        if service == "dynamodb":  # the request as sent: a JSON body
            r, w = cost.capacity_units(model.name, json.loads(params["body"]))
            self.rru, self.wru = self.rru + r, self.wru + w

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
