"""adapters/ddb_batch.py: many items written and read several requests at
once, on moto in-process, and unprocessed items sent again with backoff."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from chalicelib.adapters import ddb_batch
from chalicelib.adapters.meta import ddb_item, ddb_plain
from tests.harness import Harness


def items(n: int, pk: str = "C#u") -> list[dict[str, Any]]:
    return [ddb_item(pk=pk, sk=f"{i:064x}") for i in range(n)]


def test_every_item_of_a_1gib_commit_is_written_and_read_back(fast: Harness) -> None:
    db, table = fast.rt.dynamodb, fast.rt.settings.table
    ddb_batch.put_all(db, table, items(3401))  # 137 requests, the last of one item
    keys = [ddb_item(pk="C#u", sk=f"{i:064x}") for i in range(0, 3500)]  # 99 absent
    got = ddb_batch.get_all(db, table, keys, ProjectionExpression="sk")
    assert sorted(ddb_plain(it)["sk"] for it in got) == [f"{i:064x}" for i in range(3401)]


class Throttled:
    """A client that leaves the second half of every request unprocessed
    once, and counts requests in flight at once."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.requests = 0
        self.live = self.peak = 0
        self.lock = threading.Lock()
        self.gate = threading.Barrier(4, timeout=5)  # four requests must overlap

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        with self.lock:
            self.requests += 1
            first = self.requests <= 4
            self.live += 1
            self.peak = max(self.peak, self.live)
        if first:
            self.gate.wait()
        [(table, puts)] = RequestItems.items()
        keep = puts if not first else puts[:len(puts) // 2]
        with self.lock:
            self.written += [p["PutRequest"]["Item"]["sk"]["S"] for p in keep]
            self.live -= 1
        rest = puts[len(keep):]
        return {"UnprocessedItems": {table: rest} if rest else {}}


def test_writes_overlap_and_unprocessed_items_go_again_after_a_backoff() -> None:
    db, waits = Throttled(), list[float]()
    ddb_batch.put_all(db, "t", items(100), workers=4, sleep=waits.append)
    assert sorted(db.written) == [f"{i:064x}" for i in range(100)]  # each once
    assert db.peak >= 4
    assert waits == [ddb_batch.BACKOFF_S] * 4  # one backoff per throttled request


def test_the_first_error_raises() -> None:
    def fail(i: int) -> int:
        if i == 3:
            raise RuntimeError("throttled for good")
        return i

    with pytest.raises(RuntimeError, match="for good"):
        ddb_batch.each(fail, list(range(10)))
    assert ddb_batch.each(fail, [1, 2]) == [1, 2]
