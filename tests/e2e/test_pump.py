"""The event pump against SQS (moto in-process): Lambda's event shape, and
Lambda's delivery contract (delete on success, redeliver on failure)."""
from __future__ import annotations

import json
import random
from typing import Any

from chalicelib.commit import staging_keys_from_sqs_body
from local.pump import DUPLICATE_MARK, Pump, lambda_sqs_event
from tests.conftest import EVENTS_BUCKET


def drain(pump: Pump) -> int:
    total = 0
    while (n := pump.poll_once()):
        total += n
    return total


def counts(sqs: Any, url: str) -> tuple[int, int]:
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


def test_events_arrive_in_lambda_shape_and_are_deleted(s3_events: tuple[Any, Any, str]) -> None:
    s3, sqs, url = s3_events
    events: list[dict[str, Any]] = []
    pump = Pump(sqs, url, lambda event, ctx: events.append(event), region="us-east-1",
                wait_s=0)
    s3.put_object(Bucket=EVENTS_BUCKET, Key="staging/u 1/x+y", Body=b"m")
    s3.put_object(Bucket=EVENTS_BUCKET, Key="chunks/elsewhere", Body=b"c")  # outside the filter
    assert drain(pump) == 2  # the s3:TestEvent and the one staging object
    records = [r for e in events for r in e["Records"]]
    for r in records:
        assert set(r) == {"messageId", "receiptHandle", "body", "attributes",
                          "messageAttributes", "md5OfBody", "eventSource",
                          "eventSourceARN", "awsRegion"}
        assert (r["eventSource"], r["awsRegion"]) == ("aws:sqs", "us-east-1")
        assert r["eventSourceARN"] == pump.queue_arn
        assert r["attributes"]["ApproximateReceiveCount"] == "1"
    keys = [k for r in records for k in staging_keys_from_sqs_body(r["body"])]
    assert keys == ["staging/u 1/x+y"]  # moto's URL-encoding undone
    assert any(json.loads(r["body"]).get("Event") == "s3:TestEvent" for r in records)
    assert counts(sqs, url) == (0, 0)
    assert (pump.stats.messages, pump.stats.failed_batches) == (2, 0)


def test_a_failing_batch_stays_on_the_queue_for_redelivery(s3_events: tuple[Any, Any, str]) -> None:
    s3, sqs, url = s3_events
    drain(Pump(sqs, url, lambda e, c: None, region="us-east-1", wait_s=0))  # the TestEvent
    s3.put_object(Bucket=EVENTS_BUCKET, Key="staging/u/1", Body=b"m")
    handles: list[str] = []

    def fail(event: dict[str, Any], ctx: Any) -> None:
        handles.extend(r["receiptHandle"] for r in event["Records"])
        raise ConnectionError("redis is down")

    failing = Pump(sqs, url, fail, region="us-east-1", wait_s=0)
    assert failing.poll_once() == 1
    assert failing.stats.failed_batches == 1
    assert counts(sqs, url) == (0, 1)  # in flight until the visibility timeout
    assert failing.poll_once() == 0  # not visible to anyone meanwhile

    # What the 30 s visibility timeout does: the message becomes visible again
    # and is delivered a second time, now with a receive count of 2.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handles[0], VisibilityTimeout=0)
    seen: list[dict[str, Any]] = []
    ok = Pump(sqs, url, lambda e, c: seen.append(e), region="us-east-1", wait_s=0)
    assert ok.poll_once() == 1
    record = seen[0]["Records"][0]
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert staging_keys_from_sqs_body(record["body"]) == ["staging/u/1"]
    assert counts(sqs, url) == (0, 0)


def test_duplicates_are_sent_once_per_original(s3_events: tuple[Any, Any, str]) -> None:
    s3, sqs, url = s3_events
    bodies: list[str] = []
    marked: list[bool] = []

    def record(event: dict[str, Any], ctx: Any) -> None:
        for r in event["Records"]:
            bodies.append(r["body"])
            marked.append(DUPLICATE_MARK in r["messageAttributes"])

    pump = Pump(sqs, url, record, region="us-east-1", wait_s=0, duplicate_rate=1.0,
                rng=random.Random(1))
    s3.put_object(Bucket=EVENTS_BUCKET, Key="staging/u/2", Body=b"m")
    assert drain(pump) == 4  # TestEvent + object, then one duplicate of each
    assert sorted(marked) == [False, False, True, True]
    assert sorted(bodies[:2]) == sorted(bodies[2:])
    assert pump.stats.duplicates_sent == 2
    assert counts(sqs, url) == (0, 0)


def test_lambda_attribute_shape() -> None:
    event = lambda_sqs_event([{
        "MessageId": "m", "ReceiptHandle": "r", "Body": "{}", "MD5OfBody": "x",
        "MessageAttributes": {"s": {"DataType": "String", "StringValue": "v"},
                              "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}}],
        "arn:aws:sqs:us-east-1:1:q", "us-east-1")
    attrs = event["Records"][0]["messageAttributes"]
    assert attrs["s"] == {"stringValue": "v", "stringListValues": [], "binaryListValues": [],
                          "dataType": "String"}
    assert attrs["b"]["binaryValue"] == "AAE="


def test_the_handler_log_has_one_line_per_successful_invocation(
        s3_events: tuple[Any, Any, str], tmp_path: Any) -> None:
    """--handler-log (benchmarks: the batch handler time `make cost` prices):
    each successful invocation's duration and message count; a failed one
    is not billed here, as it is retried."""
    import time

    s3, sqs, url = s3_events
    log = tmp_path / "runs.jsonl"
    drain(Pump(sqs, url, lambda e, c: None, region="us-east-1", wait_s=0))  # the TestEvent
    for i in range(3):
        s3.put_object(Bucket=EVENTS_BUCKET, Key=f"staging/u/{i}", Body=b"m")

    def slow(event: dict[str, Any], ctx: Any) -> None:
        time.sleep(0.05)

    before = time.time()
    assert drain(Pump(sqs, url, slow, region="us-east-1", wait_s=0, handler_log=log)) == 3
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["messages"] for r in runs) == 3
    assert all(r["ms"] >= 50 and before <= r["end"] <= time.time() for r in runs)

    def fail(event: dict[str, Any], ctx: Any) -> None:
        raise ConnectionError("down")

    s3.put_object(Bucket=EVENTS_BUCKET, Key="staging/u/x", Body=b"m")
    assert Pump(sqs, url, fail, region="us-east-1", wait_s=0, handler_log=log).poll_once() == 1
    assert len(log.read_text().splitlines()) == len(runs)


def test_the_handler_log_carries_the_stacks_cumulative_ddb_requests(
        s3_events: tuple[Any, Any, str], tmp_path: Any) -> None:
    """What `make bench` turns into DynamoDB requests per 1,000 files: each
    line of the handler log carries the counts of the attached client so far,
    writes and reads apart, and calls made outside a handler run count too."""
    import boto3

    from local.aws_calls import CallCounter

    s3, sqs, url = s3_events
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    counter = CallCounter().attach(ddb)

    def handler(event: dict[str, Any], ctx: Any) -> None:
        for r in event["Records"]:
            ddb.put_item(TableName="t", Item={"pk": {"S": r["messageId"]}})
        ddb.get_item(TableName="t", Key={"pk": {"S": "x"}})

    log_path = tmp_path / "runs.jsonl"
    pump = Pump(sqs, url, handler, region="us-east-1", wait_s=0, batch_size=1,
                handler_log=log_path, counters=counter.totals)
    ddb.update_item(TableName="t", Key={"pk": {"S": "api"}},  # the API's write, before
                    UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "1"}})
    s3.put_object(Bucket=EVENTS_BUCKET, Key="staging/u/a", Body=b"m")
    assert drain(pump) == 2  # the s3:TestEvent and the staging object, one run each
    lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert [(x["ddb_writes"], x["ddb_reads"]) for x in lines] == [(2, 1), (3, 2)]
    assert counter.totals() == {"ddb_writes": 3, "ddb_reads": 2}
