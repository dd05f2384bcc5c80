"""The sweeper: every upload ends (invariant 4).

Pending batches (v1 uploads and deletes are batches of one) older than the
cutoff are finished through the normal pipeline when their bundle arrived
(a lost event), or every open entry rejected when it never did (woken and
pushed like a commit's result). Staging objects with no pending batch of
their user behind them are deleted.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from .batch_commit import commit_batch, expire_batch
from .config import Runtime
from .core.batch import BatchRecord
from .core.decide import PENDING
from .core.errors import BadRequest
from .core.ids import STAGING, parse_staging_key, staging_key

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
    for batch_id in rt.meta.pending_before(cutoff):
        _sweep_batch(rt, batch_id, now, report)
    for key in rt.blobs.list_older(STAGING, cutoff):
        if not _pending_batch(rt, key):
            rt.blobs.delete(key)
            report.orphans_deleted.append(key)
    return report


def expiry_reason(rec: BatchRecord) -> str:
    """What an entry whose bundle never came is told (a v1 upload, in v1 words)."""
    if rec.detached is not None:
        return "upload expired before its manifest arrived"
    return "batch expired before its bundle arrived"


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
        elif expire_batch(rt, batch, expiry_reason(batch), now):
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
