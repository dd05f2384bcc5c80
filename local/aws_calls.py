"""Counting the DynamoDB requests the local stack makes (for `make bench`).

The issue's measure of a batch's cost is per 1,000 files: handler runs and
DynamoDB write requests. `tests/deploy/test_call_counts.py` pins the calls of
one batch against the cost model; this counts them in a real run instead,
API and commit handler together, so the bench can report what a sync of
10,000 small files actually cost. botocore's `before-call` event fires once
per API call (a retry inside botocore is not counted again), and never for a
presigned URL.
"""
from __future__ import annotations

import threading
from collections import Counter
from typing import Any

WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                    "TransactWriteItems"})
READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"})


class CallCounter:
    """Requests per operation name, from every client attached, thread-safe
    (the API's threads and the pump's workers share the clients)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()

    def attach(self, client: Any) -> CallCounter:
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-call.{service}", self._on_call)
        return self

    def _on_call(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.calls[model.name] += 1

    def totals(self) -> dict[str, int]:
        """Cumulative DynamoDB writes and reads since the stack started."""
        with self._lock:
            return {"ddb_writes": sum(n for op, n in self.calls.items() if op in WRITES),
                    "ddb_reads": sum(n for op, n in self.calls.items() if op in READS)}
