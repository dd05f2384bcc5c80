"""The event pump: locally, what Lambda's SQS event source mapping does.

Worker threads long-poll the commit queue that moto fills from the bucket's
S3 -> SQS notification, and hand each batch, in Lambda's SQS event shape, to
the SAME handler Lambda runs (`app.on_commit_queue`). Like the mapping:
  - a batch that returns is deleted from the queue;
  - a batch that raises is left alone, so its messages come back after the
    queue's visibility timeout (and go to the dead-letter queue after
    maxReceiveCount): at-least-once delivery, retries included.

Several workers poll at once, so batches run concurrently and may finish out
of order, as concurrent Lambda invocations do. For harsher testing the pump
can also re-send each delivered message as a duplicate (`duplicate_rate`) and
hold batches back for a random time (`max_delay_s`): S3 promises neither
exactly-once nor ordered events, so the handler must not care (invariant 3).
"""
from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("sealsync.pump")

Handler = Callable[[dict[str, Any], Any], Any]
DUPLICATE_MARK = "sealsync-pump-duplicate"


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute as Lambda spells it (camelCase, binary
    values base64 text)."""
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [],
                           "dataType": value.get("DataType", "String")}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str,
                     region: str) -> dict[str, Any]:
    """The event Lambda passes to an SQS-triggered function, built from
    `receive_message` results."""
    return {"Records": [{
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": dict(m.get("Attributes") or {}),
        "messageAttributes": {name: _lambda_attribute(value) for name, value
                              in (m.get("MessageAttributes") or {}).items()},
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    } for m in messages]}


def lambda_context(function_name: str, timeout_s: int = 30) -> Any:
    """A Lambda context object (request id, remaining time), as chalice's
    local server builds one for HTTP handlers."""
    from chalice.local import LambdaContext

    return LambdaContext(function_name=function_name, memory_size=512,
                         max_runtime_ms=timeout_s * 1000)


@dataclass
class PumpStats:
    batches: int = 0
    messages: int = 0
    failed_batches: int = 0
    failed_messages: int = 0
    duplicates_sent: int = 0


class Pump:
    """Deliver the commit queue to `handler(event, context)` until stopped."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, *, region: str,
                 function_name: str = "sealsync-local-on_commit_queue",
                 workers: int = 4, batch_size: int = 10, wait_s: int = 2,
                 duplicate_rate: float = 0.0, max_delay_s: float = 0.0,
                 rng: random.Random | None = None, handler_log: Path | None = None,
                 counters: Callable[[], dict[str, int]] | None = None) -> None:
        if not 0.0 <= duplicate_rate <= 1.0:
            raise ValueError("duplicate_rate must be between 0 and 1")
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.region = region
        self.function_name = function_name
        self.workers = workers
        self.batch_size = batch_size
        self.wait_s = wait_s
        self.duplicate_rate = duplicate_rate
        self.max_delay_s = max_delay_s
        self.rng = rng or random.Random()
        self.handler_log = handler_log  # a JSON line per successful handler run
        self.counters = counters  # cumulative counts added to each line (local/aws_calls.py)
        self.queue_arn: str = sqs.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.stats = PumpStats()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Pump:
        for i in range(self.workers):
            t = threading.Thread(target=self._run, name=f"pump-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop polling; a batch being handled is finished first."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        self._threads.clear()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the queue itself is unreachable
                if not self._stop.is_set():
                    log.warning("polling the commit queue failed: %s: %s",
                                type(exc).__name__, exc)
                    self._stop.wait(1.0)

    # -- one batch ----------------------------------------------------------
    def poll_once(self) -> int:
        """Receive one batch (long poll) and deliver it; return its size."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_s, MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"])
        messages: list[dict[str, Any]] = got.get("Messages") or []
        if messages:
            self.deliver(messages)
        return len(messages)

    def deliver(self, messages: list[dict[str, Any]]) -> bool:
        """Invoke the handler with one batch; delete it only on success."""
        if self.max_delay_s > 0 and self._stop.wait(self.rng.uniform(0, self.max_delay_s)):
            return False  # stopping: the messages reappear after the timeout
        event = lambda_sqs_event(messages, self.queue_arn, self.region)
        t0, started = time.time(), time.perf_counter()
        try:
            result = self.handler(event, lambda_context(self.function_name))
            handler_ms = (time.perf_counter() - started) * 1000
        except Exception as exc:  # noqa: BLE001 - Lambda's contract: any error means retry
            with self._stats_lock:
                self.stats.failed_batches += 1
            log.warning("commit handler failed on a batch of %d; left on the queue "
                        "for redelivery: %s: %s", len(messages), type(exc).__name__, exc)
            return False
        if log.isEnabledFor(logging.DEBUG):
            sent = min(int(m.get("Attributes", {}).get("SentTimestamp", t0 * 1000))
                       for m in messages) / 1000
            log.debug("batch of %d: queued %.1f ms, handled in %.1f ms", len(messages),
                      (t0 - sent) * 1000, (time.time() - t0) * 1000)
        # ReportBatchItemFailures: the messages the handler names stay queued.
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])
                  } if isinstance(result, dict) else set()
        if failed:
            with self._stats_lock:
                self.stats.failed_messages += len(failed)
            messages = [m for m in messages if m["MessageId"] not in failed]
        # Duplicate before deleting, so the queue never looks drained while a
        # duplicate is still to come (a drain check then saw 7 of 8 in CI).
        self._maybe_duplicate(messages)
        self._delete(messages)
        with self._stats_lock:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            if self.handler_log is not None:  # Lambda's "Duration" of this invocation
                line = {"end": time.time(), "ms": round(handler_ms, 2),
                        "messages": len(messages), **(self.counters() if self.counters else {})}
                with self.handler_log.open("a") as f:
                    f.write(json.dumps(line) + "\n")
        return True

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(messages)]
        failed = self.sqs.delete_message_batch(QueueUrl=self.queue_url,
                                               Entries=entries).get("Failed") or []
        for f in failed:
            log.warning("could not delete a delivered message (%s); it will be "
                        "delivered again", f.get("Code"))

    def _maybe_duplicate(self, messages: list[dict[str, Any]]) -> None:
        """Re-send some delivered messages once more, possibly delayed: the
        at-least-once, any-order delivery the handler must tolerate."""
        if self.duplicate_rate <= 0:
            return
        for m in messages:
            if DUPLICATE_MARK in (m.get("MessageAttributes") or {}):
                continue  # one duplicate per original is enough
            if self.rng.random() >= self.duplicate_rate:
                continue
            delay = int(self.rng.uniform(0, min(self.max_delay_s, 900)))
            self.sqs.send_message(
                QueueUrl=self.queue_url, MessageBody=m["Body"], DelaySeconds=delay,
                MessageAttributes={DUPLICATE_MARK: {"DataType": "String",
                                                    "StringValue": m["MessageId"]}})
            with self._stats_lock:
                self.stats.duplicates_sent += 1
