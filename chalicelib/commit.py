"""The commit handler's entry: staging keys from S3 or SQS events, each
routed to the batch pipeline (batch_commit.py). There is one commit path:
a v1 upload or delete is a batch of one (single.py, docs/DESIGN.md "One
protocol").

The server's own batch record decides what a key is; anything else in
staging (an unknown id, or one under another user's prefix) is deleted and
never committed. `fault(step)` lets tests pause or crash at each step
boundary of the pipeline.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from .batch_commit import BatchOutcome, Fault, commit_batch, no_fault
from .config import Runtime
from .core.errors import BadRequest
from .core.ids import parse_staging_key

log = logging.getLogger("sealsync.commit")


def commit_staging_object(rt: Runtime, key: str, fault: Fault = no_fault,
                          now: Callable[[], float] = time.time) -> BatchOutcome:
    """Run the pipeline for one staging key. Raises only retryable errors
    (Redis or AWS unavailable, locks busy); bad input becomes an Outcome."""
    try:
        user_id, batch_id = parse_staging_key(key)
    except BadRequest as exc:
        log.warning("ignoring object outside staging: %s", exc.message)
        return BatchOutcome(None, "ignored", exc.message)
    rec = rt.batches.get(batch_id)
    if rec is None or rec.user_id != user_id:
        # Unknown, or written under another user's prefix: never commit it.
        # The object is removed so it cannot linger (the sweeper would too).
        rt.blobs.delete(key)
        log.warning("deleted staging object with no batch record: %s", batch_id)
        return BatchOutcome(batch_id, "ignored", "no such upload for this user")
    return commit_batch(rt, key, rec, fault, now)


# -- event shapes -------------------------------------------------------------
def staging_keys_from_s3_event(event: Any) -> list[str]:
    """Keys of ObjectCreated records in an S3 notification (decoded: S3 and
    moto URL-encode keys). Test events and malformed records yield nothing."""
    if not isinstance(event, dict):
        return []
    keys = []
    records = event.get("Records")
    for record in records if isinstance(records, list) else []:
        try:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
        except (AttributeError, KeyError, TypeError):
            log.warning("ignoring malformed S3 record")
    return keys


def staging_keys_from_sqs_body(body: str) -> list[str]:
    try:
        return staging_keys_from_s3_event(json.loads(body))
    except (ValueError, TypeError, RecursionError):
        log.warning("ignoring SQS message that is not JSON")
        return []


def commit_keys(rt: Runtime, keys: list[str],
                fault: Fault = no_fault) -> list[BatchOutcome]:
    """Commit each key; if any failed retryably, raise after trying them all
    so the event is redelivered (finished keys are no-ops the second time)."""
    outcomes, errors = [], []
    for key in keys:
        try:
            outcomes.append(commit_staging_object(rt, key, fault))
        except Exception as exc:  # noqa: BLE001 - every failure means "retry"
            log.warning("commit failed, will be retried: %s", type(exc).__name__)
            errors.append(exc)
    if errors:
        raise errors[0]
    return outcomes


def failed_messages(rt: Runtime, messages: Iterable[tuple[str, str]],
                    fault: Fault = no_fault) -> list[str]:
    """Commit each SQS message `(message_id, body)`; return the ids of those
    that failed retryably. With ReportBatchItemFailures only these come back,
    not the whole batch (their keys are no-ops if they had half-finished)."""
    failed = []
    for message_id, body in messages:
        try:
            commit_keys(rt, staging_keys_from_sqs_body(body), fault)
        except Exception:  # noqa: BLE001 - commit_keys logged it; SQS retries it
            failed.append(message_id)
    return failed
