"""The local stand-in for EventBridge Scheduler: fires each job of
chalicelib.jobs.SCHEDULES when it is due, through the same handler the
deployed schedules invoke (app.scheduled_job), from a thread of `make dev`.

    python -m local.scheduler fire JOB [--at EPOCH]   # fire one job now, once,
                                                     # against the running stack

A job due while the stack was down fires once when it starts (schedules
have no backlog), and every job is idempotent, so firing early or twice
is harmless.
"""
from __future__ import annotations

import argparse
import calendar
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sealsync.scheduler")
MONTHLY_AT_S = 5 * 60  # day 1, 00:05 UTC


def next_due(every: int | str, last: float | None, now: float) -> float:
    """When a schedule fires next after firing at `last` (None: never)."""
    if last is None:
        return now
    if isinstance(every, int):
        return last + every
    tm = time.gmtime(last)
    y, m = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0)) + MONTHLY_AT_S


class LocalScheduler:
    """Call `fire({"job": name})` for every job that is due at each tick."""

    def __init__(self, schedules: dict[str, int | str],
                 fire: Callable[[dict[str, Any]], Any]) -> None:
        self.schedules = schedules
        self.fire = fire
        self.last: dict[str, float] = {}

    def tick(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        fired = []
        for name, every in self.schedules.items():
            if now >= next_due(every, self.last.get(name), now):
                try:
                    self.fire({"job": name})
                except Exception as exc:  # noqa: BLE001 - like EventBridge: retried next tick
                    log.warning("job %s failed: %s", name, type(exc).__name__)
                    continue
                self.last[name] = now
                fired.append(name)
        return fired


def main(argv: list[str] | None = None) -> int:
    """Fire one job against the running stack (its state file names it)."""
    ap = argparse.ArgumentParser(description="fire a scheduled job on the local stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    fire = sub.add_parser("fire")
    fire.add_argument("job")
    fire.add_argument("--at", type=int, help="pretend it is this time (epoch seconds)")
    fire.add_argument("--state-file", default=".sealsync-stack.json")
    args = ap.parse_args(argv)
    from chalicelib import jobs

    if args.job not in jobs.SCHEDULES:
        ap.error(f"no job {args.job!r}; jobs: {', '.join(jobs.SCHEDULES)}")
    try:
        with open(args.state_file) as f:
            state = json.loads(f.read())
    except (OSError, ValueError):
        print(f"no running stack ({args.state_file}): run `make dev` first", file=sys.stderr)
        return 2
    import os

    os.environ.update(state.get("env", {}))
    os.environ.setdefault("SEALSYNC_TOKEN_SECRET", os.urandom(32).hex())  # jobs sign nothing
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")  # moto's
    from chalicelib.config import Runtime, Settings

    rt = Runtime(Settings.from_env())
    print(json.dumps(jobs.run_job(rt, {"job": args.job}, args.at or int(time.time()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
