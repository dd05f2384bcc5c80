"""ReportBatchItemFailures: one failing message in an SQS batch is the only
one redelivered; the rest are committed and deleted, through the real
Chalice handler and through the local pump that stands in for Lambda."""
from __future__ import annotations

import json
from typing import Any

from app import on_commit_queue
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import new_id
from local.pump import Pump
from tests.conftest import EVENTS_BUCKET
from tests.harness import Harness
from tests.unit.test_events import s3_event, s3_record, sqs_event


def _failing_copy(h: Harness, key: str) -> None:
    """S3 fails to copy this one staging object into place (a 503): its
    commit fails retryably after its checks. (A held file lock no longer
    fails a commit: the batch goes on without it and the fence decides.)"""
    real_copy = h.rt.blobs.copy

    def copy(source: str, dest: str, **kw: Any) -> None:
        if source == key:
            raise Unavailable("S3 is failing")
        real_copy(source, dest, **kw)

    h.rt.blobs.copy = copy  # type: ignore[method-assign]


def test_only_the_failed_message_is_reported(fast: Harness) -> None:
    dev = fast.signup()
    busy, free = fast.stage(dev, new_id(), 0), fast.stage(dev, new_id(), 0)
    _failing_copy(fast, busy.key)
    event = sqs_event(json.dumps(s3_event(s3_record(busy.key))),
                      json.dumps(s3_event(s3_record(free.key))), "not json")
    ids = [r["messageId"] for r in event["Records"]]

    result = on_commit_queue(event, None)

    assert result == {"batchItemFailures": [{"itemIdentifier": ids[0]}]}
    assert fast.status(dev, free.upload_id)["status"] == "accepted"
    assert fast.status(dev, busy.upload_id)["status"] == "pending"
    assert fast.rt.blobs.size(busy.key) is not None  # kept for the retry


def test_a_clean_batch_reports_no_failures(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    assert on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(up.key)))), None) == {
        "batchItemFailures": []}
    assert fast.status(dev, up.upload_id)["status"] == "accepted"


def test_the_pump_keeps_only_reported_messages(s3_events: tuple[Any, Any, str]) -> None:
    s3, sqs, url = s3_events
    sqs.purge_queue(QueueUrl=url)  # the notification's s3:TestEvent
    for i in range(3):
        s3.put_object(Bucket=EVENTS_BUCKET, Key=f"staging/u/{i}", Body=b"m")
    delivered: list[str] = []

    def handler(event: dict[str, Any], ctx: Any) -> dict[str, Any]:
        records = event["Records"]
        delivered.extend(r["messageId"] for r in records)
        bad = [r for r in records if r["body"].count("staging/u/1") or
               r["body"].count("staging%2Fu%2F1")]
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in bad]}

    pump = Pump(sqs, url, handler, region="us-east-1", wait_s=0)
    while pump.poll_once():
        pass
    assert len(delivered) == 3
    assert pump.stats.failed_messages == 1 and pump.stats.failed_batches == 0
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attrs["ApproximateNumberOfMessages"],
            attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "1")
