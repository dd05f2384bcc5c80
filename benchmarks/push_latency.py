"""Push against long-poll on the local stack, side by side in one run.

Two devices of one account. For each of N uploads (1 KiB inline manifest, a
new file each), the uploading device learns the result either

  push off: by long poll, GET /v1/uploads/{id}?wait=20, repeated while
            `pending` (polls per upload is the figure: <= 1.0 is the goal)
  push on:  from the WebSocket message; a poll happens only if the message
            does not come within 20 s (the goal: 0 polls)

alternating, one upload each, by two devices (one never connects); a third
device, connected by WebSocket, gets the change notices.

  push_ms     commit (the fenced transaction returned: `committed_ms` in the
              message) -> the upload result received by the uploader
  notice_ms   the same, for the change notice at the other device
  result_ms   manifest PUT returned -> result known, push on and push off

    .venv/bin/python benchmarks/push_latency.py [-n 200] [--state-file F | --start] [--json]

Without --state-file (and no running `make dev`), or with --start, it starts
its own stack on free ports and stops it at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from benchmarks.commit_latency import percentile  # noqa: E402
from local.apiclient import Client, Device, new_file_id, read_state  # noqa: E402

DEFAULT_STATE = ROOT / ".sealsync-stack.json"
MANIFEST_BYTES = 1024
WAIT_S = 20


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"p50": round(percentile(values, 50), 2), "p99": round(percentile(values, 99), 2),
            "mean": round(statistics.fmean(values), 2), "n": len(values)}


class Listener:
    """One device's WebSocket, read on a thread; messages stamped on arrival."""

    def __init__(self, ws_url: str, dev: Device) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, additional_headers=dev.headers).__enter__()
        self.cond = threading.Condition()
        self.by_upload: dict[str, tuple[float, dict[str, Any]]] = {}
        self.notices: dict[int, tuple[float, dict[str, Any]]] = {}
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                now_ms = time.time() * 1000
                msg = json.loads(raw)
                with self.cond:
                    if msg.get("type") == "upload":
                        self.by_upload[msg["upload_id"]] = (now_ms, msg)
                    elif msg.get("type") == "changes":
                        self.notices[int(msg["cursor"])] = (now_ms, msg)
                    self.cond.notify_all()
        except Exception:  # noqa: BLE001 - closed at the end
            pass

    def result(self, upload_id: str, timeout_s: float) -> tuple[float, dict[str, Any]] | None:
        with self.cond:
            self.cond.wait_for(lambda: upload_id in self.by_upload, timeout_s)
            return self.by_upload.get(upload_id)

    def notice(self, cursor: int, timeout_s: float) -> tuple[float, dict[str, Any]] | None:
        with self.cond:
            self.cond.wait_for(lambda: cursor in self.notices, timeout_s)
            return self.notices.get(cursor)

    def close(self) -> None:
        self.ws.close()
        self._t.join(5)


def stage(api: Client, dev: Device) -> str:
    manifest = secrets.token_bytes(MANIFEST_BYTES)
    ticket = api.create_upload(dev, new_file_id(), 0, manifest)
    api.put_blob(ticket["manifest_url"], manifest)
    return str(ticket["upload_id"])


def run(state: dict[str, Any], n: int, warmup: int) -> dict[str, Any]:
    """Push off and push on alternate upload by upload, so both see the same
    stack (moto's commit cost grows with the table: a block of one after a
    block of the other would compare different stacks)."""
    api = Client(state["api"])
    off = api.signup()  # never connects: learns results by long poll
    on = api.add_device(off.user_id, off.auth_key, off.account_seed)
    other = api.add_device(off.user_id, off.auth_key, off.account_seed)
    mine, theirs = Listener(state["ws_url"], on), Listener(state["ws_url"], other)
    polls: dict[str, list[int]] = {"on": [], "off": []}
    result_ms: dict[str, list[float]] = {"on": [], "off": []}
    push_ms: list[float] = []
    notice_ms: list[float] = []
    try:
        for i in range(warmup + n):
            upload_id = stage(api, off)
            t0 = time.perf_counter()
            got, count = api.decided(off, upload_id, WAIT_S)
            assert got["status"] == "accepted", got
            if i >= warmup:
                result_ms["off"].append((time.perf_counter() - t0) * 1000)
                polls["off"].append(count)

            upload_id = stage(api, on)
            t0 = time.perf_counter()
            pushed = mine.result(upload_id, WAIT_S)
            count = 0
            if pushed is None:  # not pushed in time: the fallback, counted
                _, count = api.decided(on, upload_id, WAIT_S)
            elapsed = (time.perf_counter() - t0) * 1000
            if i < warmup:
                continue
            polls["on"].append(count)
            if pushed is None:
                continue
            arrived, msg = pushed
            result_ms["on"].append(elapsed)
            push_ms.append(arrived - msg["committed_ms"])
            heard = theirs.notice(int(msg["cursor"]), WAIT_S)
            if heard is not None:
                notice_ms.append(heard[0] - heard[1]["committed_ms"])
    finally:
        mine.close()
        theirs.close()
    on_ms, off_ms = result_ms["on"], result_ms["off"]
    return {
        "benchmark": "push_latency", "uploads": n, "warmup": warmup,
        "manifest_bytes": MANIFEST_BYTES, "redis": state.get("redis"),
        "push_ms": stats(push_ms), "notice_ms": stats(notice_ms),
        "result_ms_push_on": stats(on_ms), "result_ms_push_off": stats(off_ms),
        "result_p50_ratio_on_over_off": (round(percentile(on_ms, 50) / percentile(off_ms, 50), 3)
                                         if on_ms and off_ms else None),
        "polls_per_upload_push_on": round(statistics.fmean(polls["on"]), 3),
        "polls_per_upload_push_off": round(statistics.fmean(polls["off"]), 3),
        "notices_missed": n - len(notice_ms), "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--uploads", type=int, default=200)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--state-file", type=Path, default=None,
                   help=f"a running stack (default: {DEFAULT_STATE.name} if present)")
    p.add_argument("--start", action="store_true", help="start a stack of our own")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.uploads < 1:
        p.error("--uploads must be at least 1")
    state_file = args.state_file or (None if args.start or not DEFAULT_STATE.exists()
                                     else DEFAULT_STATE)
    if state_file is not None:
        result = run(read_state(state_file), args.uploads, args.warmup)
    else:
        from benchmarks.stack import BenchStack

        with tempfile.TemporaryDirectory(prefix="sealsync-push-bench-") as work, \
                BenchStack(Path(work)) as stack:
            result = run(stack.state, args.uploads, args.warmup)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"push vs long-poll over {result['uploads']} uploads (redis: {result['redis']})")
        for key in ("push_ms", "notice_ms", "result_ms_push_on", "result_ms_push_off"):
            s = result[key]
            print(f"  {key:<20} p50 {s.get('p50', '-'):>8} ms   p99 {s.get('p99', '-'):>8} ms")
        print(f"  result p50, push on / push off: {result['result_p50_ratio_on_over_off']}")
        print(f"  polls per upload: push on {result['polls_per_upload_push_on']}, "
              f"push off {result['polls_per_upload_push_off']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
