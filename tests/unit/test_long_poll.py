"""GET /v1/uploads/{id}?wait=N (a batch of one) answers from the wake-up:
the commit wakes the batch's topic with the verdicts it wrote, so the
waiting poll does not read the record a second time. A wake-up it cannot use sends it back to the
store; either way the answer is the record's."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.core.ids import new_id
from chalicelib.core.records import batch_topic
from tests.harness import Device, Harness, Pending


def waiting_poll(fast: Harness, dev: Device, up: Pending,
                 meanwhile: Callable[[], Any]) -> tuple[dict[str, Any], int]:
    """Run a status poll with wait=10 while `meanwhile` runs after the poll's
    first read; return its answer and how many records the poll read."""
    reads: list[int] = []
    real = fast.rt.batches.get
    poller = threading.Event()

    def counted(batch_id: str) -> Any:
        if poller.is_set() and threading.current_thread().name.startswith("poll"):
            reads.append(1)
        return real(batch_id)

    fast.rt.batches.get = counted  # type: ignore[method-assign]
    poller.set()
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="poll") as pool:
            answer = pool.submit(fast.status, dev, up.upload_id, 10)
            deadline = time.monotonic() + 10
            while not reads and time.monotonic() < deadline:
                time.sleep(0.01)
            meanwhile()
            return answer.result(timeout=15), len(reads)
    finally:
        fast.rt.batches.get = real  # type: ignore[method-assign]


@pytest.mark.parametrize("outcome", ["accepted", "conflict", "rejected"])
def test_the_waiting_poll_answers_from_the_wake_up(fast: Harness, outcome: str) -> None:
    dev, f = fast.signup(), new_id()
    if outcome == "conflict":  # revision 1 lands first; ours is from base 0 too
        fast.commit(fast.stage(dev, f, 0).key)
    up = fast.stage(dev, f, 5 if outcome == "rejected" else 0)  # 5: ahead of the head
    answer, reads = waiting_poll(fast, dev, up, lambda: fast.commit(up.key))
    assert reads == 1  # the first read only: the wake-up carried the result
    assert answer == fast.status(dev, up.upload_id)  # exactly what the record says
    assert answer["status"] == outcome


ENTRY = b'{"file_id": "FILE", "status": "accepted", "revision": 1}'


@pytest.mark.parametrize("payload", [
    b"1", b"not json", b"[]", b'{"status": "finished"}',
    b'{"batch_id": "someone-else", "status": "finished", "entries": [' + ENTRY + b']}',
    b'{"batch_id": "UP", "status": "pending", "entries": [' + ENTRY + b']}',
    b'{"batch_id": "UP", "status": "finished", "entries": []}',
    b'{"batch_id": "UP", "status": "finished", "entries": [' + ENTRY.replace(
        b"FILE", b"0" * 32) + b']}'])
def test_a_wake_up_without_a_usable_result_sends_the_poll_to_the_store(
        fast: Harness, payload: bytes) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    payload = payload.replace(b"UP", up.upload_id.encode()).replace(
        b"FILE", up.file_id.encode())
    answer, reads = waiting_poll(fast, dev, up, lambda: fast.rt.waker.wake(
        batch_topic(up.upload_id), payload=payload))
    assert reads == 2
    assert answer["status"] == "pending"  # the record's answer, not the payload's
