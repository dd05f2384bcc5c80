"""Hearing from the server without asking: WebSocket push, long-poll fallback.

A `PushChannel` runs on one background thread. When the server offers a
WebSocket (`GET /v1/push`), it keeps one open and:

* a `batch` message (the verdicts of this device's batch) is kept for
  `wait_result`, so the uploading thread needs no poll at all;
* a `changes` message (another device committed) sets `wake`, and the
  watch loop runs a sync pass, which pulls from its cursor.

When the socket drops it reconnects with exponential backoff and full
jitter, long-polling the change feed meanwhile; after every (re)connect it
sets `wake`, so the next pass catches up from the cursor and nothing sent
while it was away is missed. The change feed stays the truth: a message is
only ever a hint to look.

`PushApi` is the client's `Api` with one difference: `wait_batch` first
waits for the pushed result, and falls back to the long poll when there is
no connection, it dropped, or the result does not come.
"""
from __future__ import annotations

import contextlib
import json
import random
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .api import Api, ApiError, Body

PING_EVERY_S = 300.0  # API Gateway closes a WebSocket idle for 10 minutes
RESULT_WAIT_S = 25.0  # then ask once by long poll
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_RESULTS = 4096  # results kept for uploads nobody waits for (yet)
MAX_MESSAGE = 64 * 1024

State = Callable[[str, str], None]  # (state, detail)


def backoff(attempt: int, rng: random.Random, base: float = BACKOFF_BASE_S,
            cap: float = BACKOFF_CAP_S) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], at least
    base/2, so a fleet of clients that lost one server does not return at once."""
    return max(base / 2, rng.uniform(0, min(cap, base * 2 ** min(attempt, 30))))


class PushChannel:
    def __init__(self, api: Api, ws_url: str | None, wake: threading.Event,
                 on_state: State | None = None, rng: random.Random | None = None,
                 discover: bool = False) -> None:
        self.api = api  # its own Api (own HTTP session): this runs on another thread
        self.ws_url = ws_url
        self.discover = discover  # ask the server (GET /v1/push) for ws_url first
        self.wake = wake
        self.on_state = on_state or (lambda state, detail: None)
        self.rng = rng or random.Random()
        self.state = "starting"
        self.connects = 0  # successful WebSocket connects (reconnects = connects - 1)
        self._cursor = 0
        self._cursor_moved = threading.Event()
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._generation = 0
        self._results: OrderedDict[str, Body] = OrderedDict()
        self._ws: Any = None
        self._ws_opened = False
        self._thread = threading.Thread(target=self._run, name="sealsync-push", daemon=True)

    # -- used by the watch loop ---------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def start(self) -> PushChannel:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._cursor_moved.set()
        ws = self._ws
        if ws is not None:
            ws.close()
        self._thread.join(10)
        self._set_state("stopped", "")

    def set_cursor(self, cursor: int) -> None:
        """The cursor the folder has applied (long-polls ask from here)."""
        if cursor != self._cursor:
            self._cursor = cursor
            self._cursor_moved.set()

    def wait_result(self, upload_id: str, timeout_s: float = RESULT_WAIT_S) -> Body | None:
        """The pushed result of an upload, or None (not connected, the
        connection changed meanwhile, or it did not come in time): then
        the caller long-polls, which answers at once if the result exists."""
        with self._cond:
            generation = self._generation
            ok = self._cond.wait_for(
                lambda: upload_id in self._results or self._generation != generation
                or not self.connected or self._stop.is_set(), timeout_s)
            if ok and upload_id in self._results:
                return self._results.pop(upload_id)
            return None

    # -- the thread ---------------------------------------------------------------
    def _set_state(self, state: str, detail: str) -> None:
        with self._cond:
            changed = state != self.state
            self.state = state
            self._generation += 1
            self._cond.notify_all()
        if changed:
            self.on_state(state, detail)

    def _run(self) -> None:
        attempt = 0
        while self.discover and not self._stop.is_set():
            try:
                self.ws_url = push_info(self.api).get("websocket_url")
                self.discover = False
            except ApiError:  # the server is down: ask again, later
                self._stop.wait(backoff(attempt, self.rng))
                attempt += 1
        attempt = 0
        if self.ws_url and not _safe_ws_url(self.ws_url):
            self._set_state("long-poll", f"refusing {self.ws_url}: the token would cross the "
                                         "network in clear (not wss://)")
            self.ws_url = None
        elif not self.ws_url:
            self._set_state("long-poll", "the server offers no WebSocket")
        while not self._stop.is_set():
            if not self.ws_url:
                self._poll_changes(20)
                continue
            if self._session():
                attempt = 0
            if self._stop.is_set():
                return
            delay = backoff(attempt, self.rng)
            attempt += 1
            self._set_state("disconnected", f"long-polling; reconnecting in {delay:.1f}s")
            self._poll_changes(delay)

    def _session(self) -> bool:
        """One WebSocket connection, until it drops. True if it connected."""
        from websockets.exceptions import InvalidStatus, WebSocketException
        from websockets.sync.client import connect

        self._ws_opened = False
        if self.api.token is None:
            try:
                self.api.refresh_token()
            except ApiError:
                return False
        try:
            with connect(self.ws_url or "", open_timeout=10, close_timeout=2,
                         max_size=MAX_MESSAGE,
                         additional_headers={"authorization": f"Bearer {self.api.token}"}
                         ) as ws:
                self._ws = ws
                self._serve(ws)
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):  # an expired token: get a new one
                with contextlib.suppress(ApiError):
                    self.api.refresh_token()
            return False
        except (OSError, TimeoutError, WebSocketException):
            pass  # dropped (or never opened: then `connects` did not move)
        finally:
            self._ws = None
        return self._ws_opened

    def _serve(self, ws: Any) -> None:
        from websockets.exceptions import WebSocketException

        self._ws_opened = True
        self.connects += 1
        self._set_state("connected", "websocket")
        self.wake.set()  # catch up from the cursor: we may have missed notices
        try:
            while not self._stop.is_set():
                try:
                    raw = ws.recv(timeout=PING_EVERY_S)
                except TimeoutError:
                    ws.send(json.dumps({"action": "ping"}))
                    continue
                self._on_message(raw)
        except (OSError, WebSocketException):
            pass

    def _on_message(self, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return
        if not isinstance(msg, dict):
            return
        key = msg.get("batch_id") if msg.get("type") == "batch" else None
        if isinstance(key, str):
            with self._cond:
                self._results[key] = msg
                while len(self._results) > MAX_RESULTS:
                    self._results.popitem(last=False)
                self._cond.notify_all()
        elif msg.get("type") == "changes":
            cursor = msg.get("cursor")
            if not isinstance(cursor, int) or cursor > self._cursor:
                self.wake.set()

    def _poll_changes(self, wait_s: float) -> None:
        """Long-poll the feed for up to `wait_s`; wake the loop on a change,
        then hold off until it has caught up (no busy re-asking)."""
        self._cursor_moved.clear()
        try:
            page = self.api.changes(self._cursor, limit=1, wait_s=max(1, min(20, int(wait_s))))
        except ApiError:
            self._stop.wait(max(1.0, wait_s))
            return
        if page.get("changes"):
            self.wake.set()
            self._cursor_moved.wait(max(1.0, wait_s))


class PushApi(Api):
    """`Api` whose upload results come by push when a channel is connected."""

    channel: PushChannel | None = None
    result_polls = 0  # GET /v1/batches/{id} calls made: what push saves
    _count = threading.Lock()

    def batch_status(self, batch_id: str, wait_s: int = 0) -> Body:
        with self._count:
            self.result_polls += 1
        return super().batch_status(batch_id, wait_s)

    def wait_batch(self, batch_id: str, rounds: int = 15, wait_s: int = 20) -> Body:
        """A pushed batch result carries every verdict when they fit; one
        that carries only counts (or none at all) sends us to the long poll,
        which answers at once when the batch is finished."""
        channel = self.channel
        if channel is not None and channel.connected:
            pushed = channel.wait_result(batch_id)
            if pushed is not None and pushed.get("status") != "pending" \
                    and isinstance(pushed.get("entries"), list):
                return {"batch_id": batch_id, "status": pushed["status"],
                        "entries": pushed["entries"]}
        return super().wait_batch(batch_id, rounds, wait_s)


def push_info(api: Api) -> Body:
    """What the server offers; an older server without push offers nothing."""
    try:
        return api.call("GET", "/v1/push")
    except ApiError as exc:
        if exc.status in (403, 404):
            return {"websocket_url": None, "mobile_platforms": []}
        raise


def _safe_ws_url(url: str) -> bool:
    """wss://, or ws:// to this machine (the same rule as the API's URL)."""
    from .api import check_server_url
    from .errors import UsageError

    try:
        check_server_url(url.replace("wss://", "https://", 1).replace("ws://", "http://", 1))
    except UsageError:
        return False
    return url.startswith(("wss://", "ws://"))
