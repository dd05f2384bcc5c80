"""The timed jobs. In AWS, EventBridge Scheduler invokes the `jobs` Lambda
with `{"job": NAME}` (deploy/sam-merge.yaml); locally local/scheduler.py
fires the same handler when a schedule is due. Each job is idempotent: a
schedule that fires twice has one effect (conditional moves in the store,
one invoice per account and period, one mail per key).

  invoice_run      monthly, day 1: last month's invoice for every account
  usage_warnings   hourly: mail at 80 % and 100 % of the quota, once each a month
  trial_expiry     hourly: trials that ended become active (payment method
                   on file) or read-only (none)
  grace_read_only  hourly: unpaid past the grace period becomes read-only
  gc               hourly (a user's cycle about daily): unreferenced chunks
                   and packs past the grace period are deleted, safely
                   against concurrent dedup
                   (chalicelib/gc.py; docs/DESIGN.md "Pack and chunk lifecycle")
  retention        daily: versions superseded or deleted longer ago than
                   SEALSYNC_RETENTION_DAYS expire, and the quota frees
                   (chalicelib/retention.py; docs/DESIGN.md "Retention rule")
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from . import billing, gc, retention
from .config import Runtime
from .core import billing as core
from .core import emails, metering

log = logging.getLogger("sealsync.jobs")


def usage_warnings(rt: Runtime, now: int) -> dict[str, int]:
    quota = rt.settings.prices.quota_bytes
    month = metering.month_of(now).start
    sent = 0
    for s in rt.billing.all():
        stored, _ = rt.usage.total(s.user_id)
        level = metering.quota_level(stored, quota)
        if not level:
            continue
        mail = emails.usage_warning(level, stored, quota, rt.settings.retention_days)
        if rt.mailer.send_once(s.user_id, s.mail_to(), f"usage#{month}#{level}", mail):
            sent += 1
    return {"sent": sent}


def _read_only(rt: Runtime, s: core.Standing, reason: str) -> bool:
    if not rt.billing.move(s, replace(s, status=core.READ_ONLY)):
        return False  # another run moved it first
    rt.mailer.send_once(s.user_id, s.mail_to(), f"read_only#{reason}#{s.unpaid_since or 0}",
                        emails.read_only(reason))
    return True


def trial_expiry(rt: Runtime, now: int) -> dict[str, int]:
    out = {"active": 0, "read_only": 0}
    for s in rt.billing.all():
        if core.after_trial(s, now) == core.ACTIVE:
            out["active"] += rt.billing.move(s, replace(s, status=core.ACTIVE))
        elif core.due_for_read_only(s, now, rt.settings.grace_days) == "trial":
            out["read_only"] += _read_only(rt, s, "trial")
    return out


def grace_read_only(rt: Runtime, now: int) -> dict[str, int]:
    moved = 0
    for s in rt.billing.all():
        if core.due_for_read_only(s, now, rt.settings.grace_days) == "unpaid":
            moved += _read_only(rt, s, "unpaid")
    return {"read_only": moved}


JOBS: dict[str, Callable[[Runtime, int], dict[str, int]]] = {
    "invoice_run": billing.invoice_run,
    "usage_warnings": usage_warnings,
    "trial_expiry": trial_expiry,
    "grace_read_only": grace_read_only,
    "gc": gc.collect,
    "retention": retention.expire,
}


# How often each job fires: seconds, or "monthly" (day 1, 00:05 UTC). The
# deploy template's AWS::Scheduler::Schedule resources say the same
# (tests/deploy/test_schedules.py); local/scheduler.py fires them locally.
SCHEDULES: dict[str, int | str] = {
    "invoice_run": "monthly",
    "usage_warnings": 3600,
    "trial_expiry": 3600,
    "grace_read_only": 3600,
    "gc": 3600,
    "retention": 24 * 3600,
}


def run_job(rt: Runtime, event: Any, now: int) -> dict[str, Any]:
    """The `jobs` Lambda: `{"job": NAME}` from the scheduler. Anything else
    is logged and dropped (a retry would not make it valid)."""
    name = event.get("job") if isinstance(event, dict) else None
    job = JOBS.get(name) if isinstance(name, str) else None
    if job is None:
        log.warning("ignoring a scheduled event with no known job")
        return {"job": None, "error": "unknown job"}
    report = job(rt, now)
    log.info("job %s: %s", name, report)
    return {"job": name, **report}
