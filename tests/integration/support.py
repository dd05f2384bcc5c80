"""Helpers for the integration tests: deliver an event the way SQS would
(retrying a retryable failure), read the whole state back, gate a thread
at a pipeline step."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from chalicelib.batch_commit import BatchOutcome, Fault, no_fault
from chalicelib.commit import commit_staging_object
from chalicelib.config import Runtime
from chalicelib.core.errors import Unavailable

# What the pipeline may raise: the event is then redelivered. Anything else
# escaping commit_staging_object is a bug, and fails the test that saw it.
# (a fence lost too often, BatchFenceLostTooOften, is an Unavailable)
RETRYABLE = (Unavailable,)
TIMEOUT_S = 30.0  # bounds every wait on an Event: a hang fails, never blocks


def deliver(rt: Runtime, key: str, fault: Fault = no_fault,
            attempts: int = 40) -> tuple[BatchOutcome, list[Exception]]:
    """Commit `key`, retrying like SQS; return the outcome and the failures."""
    failures: list[Exception] = []
    for _ in range(attempts):
        try:
            return commit_staging_object(rt, key, fault), failures
        except RETRYABLE as exc:
            failures.append(exc)
    raise AssertionError(f"{key} still failing after {attempts} deliveries: {failures[-3:]}")


def wait_for(event: threading.Event, what: str) -> None:
    assert event.wait(TIMEOUT_S), f"timed out waiting for {what}"


def table_items(rt: Runtime) -> list[dict[str, Any]]:
    """Every item in the table, sorted: the proof that nothing was written."""
    pages = rt.dynamodb.get_paginator("scan").paginate(TableName=rt.settings.table)
    items = [it for page in pages for it in page["Items"]]
    return sorted(items, key=lambda it: (it["pk"]["S"], it["sk"]["S"]))


def object_keys(rt: Runtime, prefix: str) -> list[str]:
    pages = rt.s3.get_paginator("list_objects_v2").paginate(
        Bucket=rt.settings.bucket, Prefix=prefix)
    return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))


def body(rt: Runtime, key: str) -> bytes:
    data: bytes = rt.s3.get_object(Bucket=rt.settings.bucket, Key=key)["Body"].read()
    return data


class Steps:
    """A fault hook that records the steps it saw and runs an action at
    chosen steps (the first time each is reached, unless `every`)."""

    def __init__(self, actions: dict[str, Callable[[], None]], every: bool = False) -> None:
        self.seen: list[str] = []
        self.actions = actions
        self.every = every
        self._lock = threading.Lock()

    def __call__(self, step: str) -> None:
        with self._lock:
            first = step not in self.seen
            self.seen.append(step)
        action = self.actions.get(step)
        if action is not None and (first or self.every):
            action()
