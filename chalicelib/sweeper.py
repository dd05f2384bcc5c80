"""The sweeper: every upload ends (invariant 4).

Pending uploads older than the cutoff are finished through the normal
pipeline when their manifest arrived (a lost event), or rejected when it
never did (woken and pushed like a commit's result). Staging objects with
no pending upload behind them are deleted.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .adapters.meta import AlreadyFinished
from .batch_commit import commit_batch, expire_batch
from .commit import commit_staging_object, wake_waiters
from .config import Runtime
from .core.decide import PENDING, REJECTED
from .core.errors import BadRequest
from .core.ids import STAGING, parse_staging_key, staging_key
from .core.notices import upload_result
from .push import notify_upload

log = logging.getLogger("sealsync.sweeper")


@dataclass
class SweepReport:
    finished: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    errors: int = 0


def sweep(rt: Runtime, now: float | None = None) -> SweepReport:
    now = time.time() if now is None else now
    cutoff = int(now - rt.settings.sweep_after_s)
    report = SweepReport()
    for upload_id in rt.meta.pending_before(cutoff):
        rec = rt.meta.get_upload(upload_id)
        if rec is None:
            _sweep_batch(rt, upload_id, now, report)
            continue
        if rec.status != PENDING:
            continue
        key = staging_key(rec.user_id, upload_id)
        try:
            if rt.blobs.size(key) is not None:
                commit_staging_object(rt, key)
                report.finished.append(upload_id)
            else:
                reason = "upload expired before its manifest arrived"
                rt.meta.finish(upload_id, REJECTED, int(now), reason=reason)
                result = upload_result(upload_id, rec.file_id, REJECTED, rec.base_revision,
                                       reason=reason, committed_ms=int(now * 1000))
                wake_waiters(rt, rec, result)
                # A device that waits for pushes hears of it too, as of a commit.
                notify_upload(rt, rec, result)
                report.expired.append(upload_id)
        except AlreadyFinished:
            continue
        except Exception as exc:  # noqa: BLE001 - one bad upload must not stop the sweep
            log.warning("sweep of %s failed: %s", upload_id, type(exc).__name__)
            report.errors += 1
    for key in rt.blobs.list_older(STAGING, cutoff):
        try:
            _, upload_id = parse_staging_key(key)
            rec = rt.meta.get_upload(upload_id)
        except BadRequest:
            rec = None
        if rec is None and _pending_batch(rt, key):
            continue
        if rec is None or rec.status != PENDING:
            rt.blobs.delete(key)
            report.orphans_deleted.append(key)
    return report


def _sweep_batch(rt: Runtime, batch_id: str, now: float, report: SweepReport) -> None:
    """A pending batch: finished through its pipeline when the bundle
    arrived (a lost event), else every open entry rejected."""
    batch = rt.batches.get(batch_id)
    if batch is None or batch.status != PENDING:
        return
    key = staging_key(batch.user_id, batch_id)
    try:
        if rt.blobs.size(key) is not None:
            commit_batch(rt, key, batch)
            report.finished.append(batch_id)
        elif expire_batch(rt, batch, "batch expired before its bundle arrived", now):
            report.expired.append(batch_id)
    except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the sweep
        log.warning("sweep of batch %s failed: %s", batch_id, type(exc).__name__)
        report.errors += 1


def _pending_batch(rt: Runtime, key: str) -> bool:
    """Is this staging object the bundle of a pending batch of its user?"""
    try:
        user_id, batch_id = parse_staging_key(key)
    except BadRequest:
        return False
    batch = rt.batches.get(batch_id)
    return batch is not None and batch.user_id == user_id and batch.status == PENDING
