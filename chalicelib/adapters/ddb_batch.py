"""DynamoDB batch reads and writes of many items, several requests at once.

Why: the commit of one 1 GiB file indexes about 3,400 chunks, and each
index is written 25 items per BatchWriteItem (the API's cap) and read 100
keys per BatchGetItem. One request after the other, that was ~300 round
trips on the path to the verdict (measured: 2.4 s of a 3.3 s commit on the
local stack; from a Lambda each is a network round trip too). The requests
are independent (distinct keys, idempotent puts), so they go `WORKERS` at
a time on a short-lived thread pool, as `Blobs.sizes` HEADs packs. The
order of writes across requests carries no meaning: a caller that needs
one index written before another calls these one after the other.

Items DynamoDB leaves unprocessed (throttling) are sent again with a short
exponential backoff, as AWS asks, until every one is written or read;
throttling that outlasts botocore's own retries raises as before.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

WORKERS = 8  # requests in flight; the Runtime's clients pool 32 connections
WRITE_MAX = 25  # BatchWriteItem's cap
GET_MAX = 100  # BatchGetItem's cap
BACKOFF_S = 0.02  # first wait before unprocessed items are sent again
BACKOFF_MAX_S = 1.0

T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], args: Sequence[T], workers: int = WORKERS) -> list[R]:
    """`fn` over `args`, up to `workers` at once; results in order. The first
    error raises (after the calls already running end); one call runs inline."""
    if len(args) <= 1:
        return [fn(a) for a in args]
    with ThreadPoolExecutor(max_workers=min(workers, len(args))) as pool:
        return list(pool.map(fn, args))


def _pages(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _backoff(attempt: int, sleep: Callable[[float], None]) -> None:
    sleep(min(BACKOFF_MAX_S, BACKOFF_S * (2 ** attempt)))


def put_all(db: Any, table: str, items: Sequence[dict[str, Any]],
            workers: int = WORKERS, sleep: Callable[[float], None] = time.sleep) -> None:
    """Put every item (DynamoDB-typed), WRITE_MAX a request, `workers`
    requests at once."""
    def write(page: Sequence[dict[str, Any]]) -> None:
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": it}} for it in page]}
        attempt = 0
        while True:
            got = db.batch_write_item(RequestItems=request)
            request = got.get("UnprocessedItems") or {}
            if not request:
                return
            _backoff(attempt, sleep)
            attempt += 1

    each(write, _pages(items, WRITE_MAX), workers)


def get_all(db: Any, table: str, keys: Sequence[dict[str, Any]], workers: int = WORKERS,
            sleep: Callable[[float], None] = time.sleep,
            **read: Any) -> list[dict[str, Any]]:
    """Every item of `keys` that exists (DynamoDB-typed, in no set order),
    GET_MAX keys a request, `workers` requests at once; `read` adds
    ProjectionExpression, ExpressionAttributeNames or ConsistentRead."""
    def fetch(page: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        request: dict[str, Any] = {table: {"Keys": list(page), **read}}
        attempt = 0
        while True:
            got = db.batch_get_item(RequestItems=request)
            out.extend(got["Responses"].get(table, []))
            request = got.get("UnprocessedKeys") or {}
            if not request:
                return out
            _backoff(attempt, sleep)
            attempt += 1

    return [it for found in each(fetch, _pages(keys, GET_MAX), workers) for it in found]
