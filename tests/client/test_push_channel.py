"""The client's push channel without a server: backoff with jitter, results
handed to waiting uploads, fallback when the connection changes, and file
system events waking `watch`."""
from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

from sealsync_client.api import Api
from sealsync_client.folder import watch_files
from sealsync_client.push import BACKOFF_CAP_S, PushChannel, backoff


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(7)
    for attempt in range(40):
        delays = [backoff(attempt, rng) for _ in range(200)]
        ceiling = min(BACKOFF_CAP_S, 0.5 * 2 ** attempt)
        assert all(0.25 <= d <= max(ceiling, 0.25) for d in delays)
        if ceiling > 2:
            assert len({round(d, 3) for d in delays}) > 100  # spread, not lockstep
    assert max(backoff(30, rng) for _ in range(500)) > BACKOFF_CAP_S * 0.9


def channel() -> tuple[PushChannel, threading.Event]:
    wake = threading.Event()
    return PushChannel(Api("http://127.0.0.1:9"), "ws://127.0.0.1:9", wake), wake


def test_a_pushed_result_reaches_its_waiter_even_if_it_came_first() -> None:
    ch, _ = channel()
    ch.state = "connected"
    ch._on_message(json.dumps({"type": "batch", "batch_id": "early", "status": "finished"}))
    assert ch.wait_result("early", 1)["status"] == "finished"
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(ch.wait_result("late", 30)))
    waiter.start()
    time.sleep(0.2)
    ch._on_message(json.dumps({"type": "batch", "batch_id": "late", "status": "finished"}))
    waiter.join(10)
    assert got and got[0]["batch_id"] == "late"  # type: ignore[index]


def test_a_connection_change_sends_waiters_to_the_long_poll() -> None:
    ch, _ = channel()
    ch.state = "connected"
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(ch.wait_result("x", 60)))
    waiter.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    ch._set_state("disconnected", "test")
    waiter.join(10)
    assert got == [None] and time.monotonic() - t0 < 10
    assert ch.wait_result("x", 5) is None  # not connected: no waiting at all


def test_change_notices_wake_only_when_ahead_and_junk_is_ignored() -> None:
    ch, wake = channel()
    ch.set_cursor(5)
    for junk in ("not json", "[]", '{"type": "batch"}', '{"type": "changes", "cursor": 5}'):
        ch._on_message(junk)
    assert not wake.is_set()
    ch._on_message('{"type": "changes", "cursor": 6}')
    assert wake.is_set()


def test_file_events_wake_watch_but_our_own_files_do_not(tmp_path: Path) -> None:
    (tmp_path / ".sealsync" / "tmp").mkdir(parents=True)
    wake = threading.Event()
    observer = watch_files(tmp_path, wake)
    try:
        (tmp_path / ".sealsync" / "tmp" / "download").write_bytes(b"x")
        assert not wake.wait(1.0)
        # Ours live only in .sealsync/: a user's ".sealsync-*" file is a file.
        (tmp_path / ".sealsync-notes").write_text("hello")
        assert wake.wait(10)
    finally:
        observer.stop()
        observer.join(5)
