"""The batch pipeline: one staging object (the bundle) in, one terminal
result per entry out, one wake-up and one push.

  1 the server's own batch record (trust nothing written into S3)
  2 every file lock of the batch in one Redis round trip (all or nothing)
  3 the bundle's real size, then the chunks once for the whole batch
    (packs included: pack_commit.py), and each entry's device signature
    (signing.py: one read of the bundle)
  4 heads in bulk, each entry decided on its own (core.batch, core.decide)
  5 the bundle copied into place once, before any transaction
  6 the accepted entries in groups, ONE fenced transaction each (heads,
    revisions, feed counter, one feed item and one results item for the
    group); then
    the conflicts' and rejections' results (never over an accepted entry)
  7 delete staging, release the locks, wake the long poll and push once
  8 record the accepted entries' chunks in the chunk index (after the
    verdict, off its path)

A lost fence re-reads the record (results other runs wrote) and the heads,
and decides the still open entries again; an entry whose head already
carries this batch's id was committed by an earlier run. So a crash after
any group, a lock that expired, or two handlers on one batch cost retries,
never an entry committed twice (invariant 2 and 3, per file). The locks are
taken all or nothing, or after a bounded wait those that are free (the
fence decides the others), and renewed between groups while a big batch
commits (adapters/redis_lock.py, BatchLease).
`fault(step)` lets tests pause or crash at each step boundary: locked,
checked, decided, copied, committed (after each group), cleaned.
A v1 upload or delete is a batch of one (chalicelib/single.py) and runs
here like any other.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from .adapters.blobs import Replaced
from .adapters.meta import FenceLost
from .config import Runtime
from .core import decide as core
from .core.batch import (
    FINISHED,
    BatchRecord,
    EntryResult,
    batch_body,
    bundle_offsets,
    decide_entries,
    entry_bytes,
    feed_cursor,
    group_seqs,
    plan_groups,
    result_of,
    upload_body,
)
from .core.errors import Unavailable
from .core.ids import bundle_key
from .core.notices import batch_result, upload_result
from .core.records import batch_topic, feed_topic
from .core.signatures import overridden
from .feed import feed_turn
from .pack_commit import missing_chunks
from .signing import batch_problems

log = logging.getLogger("sealsync.batch")
Fault = Callable[[str], None]
Clock = Callable[[], float]
KeepLocks = Callable[[], object]  # renews the batch's locks when due
MAX_FENCE_RETRIES = 20


def no_fault(step: str) -> None:
    """The production fault hook: nothing."""


class BatchFenceLostTooOften(Unavailable):
    """Pathological contention: let the event be retried."""


class StagingReplaced(Unavailable):
    """The staging object is not the one checked: nothing was committed from
    it; the event's retry checks the object as it is now."""


@dataclass(frozen=True)
class BatchOutcome:
    """What one event did; `status` is the batch's state after it."""

    batch_id: str | None
    status: str
    detail: str = ""
    # The record as this run finished it (it alone wakes and pushes).
    finished: BatchRecord | None = field(default=None, compare=False)
    # The record as this run last read it (its verdicts so far).
    record: BatchRecord | None = field(default=None, compare=False)
    # Chunks of accepted entries for the chunk index, written after the wake-up.
    index: tuple[str, ...] = field(default=(), compare=False)

    @property
    def single(self) -> EntryResult:
        """The verdict of a batch of one (a v1 upload or delete); pending
        while it has none, or `ignored` with the detail for no batch at all."""
        if self.record is None or len(self.record.entries) != 1:
            return EntryResult(self.status, reason=self.detail)
        return self.record.results.get(0) or EntryResult(core.PENDING)


def commit_batch(rt: Runtime, key: str, rec: BatchRecord, fault: Fault = no_fault,
                 now: Clock = time.time) -> BatchOutcome:
    """Run the pipeline for the staging key of `rec` (the caller checked the
    record belongs to the key's user). Raises only retryable errors."""
    if rec.status == FINISHED:
        rt.blobs.delete(key)  # a duplicate event or a replayed PUT
        return BatchOutcome(rec.batch_id, FINISHED, "duplicate", record=rec)
    lock_keys = [rt.locks.key(rec.user_id, e.file_id) for e in rec.entries]
    with rt.locks.held_all(lock_keys) as lease:
        fault("locked")
        rec = rt.batches.get(rec.batch_id) or rec  # again, under the locks
        if rec.status == FINISHED:
            outcome = BatchOutcome(rec.batch_id, FINISHED, "finished by another handler",
                                   record=rec)
        else:
            outcome = _decide_and_write(rt, key, rec, fault, now, lease.renew_if_due)
        if outcome.status == FINISHED:
            rt.blobs.delete(key)
        fault("cleaned")
    if outcome.finished is not None:  # after the durable writes; never fails the commit
        notify_batch(rt, outcome.finished, now)
    if outcome.index:
        # After the verdict is out, not on its path (a 1 GiB file is ~3,400
        # items). It only adds chunks the committed revisions name; a crash
        # before it costs HEADs and re-sent chunks later, never data: the
        # next commit checks every chunk the index lacks, and the
        # collector's scan puts back what revisions name (gc.py _scan).
        rt.meta.remember_chunks(rec.user_id, outcome.index)
    return outcome


def committed_chunks(rec: BatchRecord) -> tuple[str, ...]:
    """The chunks of the batch's accepted entries (what the index records)."""
    return tuple(sorted({c for i, r in rec.results.items() if r.status == core.ACCEPTED
                         for c in rec.entries[i].chunk_ids}))


def _decide_and_write(rt: Runtime, key: str, rec: BatchRecord, fault: Fault,
                      now: Clock, keep_locks: KeepLocks) -> BatchOutcome:
    stat = rt.blobs.stat(key)
    size, etag = (None, None) if stat is None else (stat.size, stat.etag)
    # A bundle of the wrong size rejects every entry: no chunk is worth a HEAD.
    missing, gc_gen = missing_chunks(rt, rec) if size == rec.bundle_size else ({}, None)
    # Signed by the presigning device for exactly these bytes? (one read of
    # the bundle: the object of `etag`, as HEADed)
    try:
        problems = batch_problems(rt, key, rec, etag) if size == rec.bundle_size else {}
    except Replaced:
        raise StagingReplaced(f"batch {rec.batch_id}: the bundle changed while checked") \
            from None
    fault("checked")
    if size is None:  # a forged or stale event must not decide a batch in flight
        return BatchOutcome(rec.batch_id, core.PENDING, "bundle is absent", record=rec)
    dest = bundle_key(rec.user_id, rec.batch_id)
    offsets = bundle_offsets([e.manifest_size for e in rec.entries])
    copied = False
    for _ in range(MAX_FENCE_RETRIES):
        open_files = [rec.entries[i].file_id for i in rec.open_entries()]
        heads = rt.batches.heads(rec.user_id, open_files)
        decisions = overridden(decide_entries(rec, heads, size, missing), problems)
        fault("decided")
        if not copied and any(isinstance(d, core.Accept | core.Conflict)
                              for d in decisions.values()):
            # Once, before any transaction (a head never points at an object
            # not stored), and never over a first copy (a replayed PUT).
            # Conflicts too: the loser's bytes stay retrievable.
            # Only the bundle of the ETag checked above is copied: one
            # replaced since (the check-then-copy window) fails the copy,
            # and the event's retry checks the new bytes from scratch.
            if rt.blobs.size(dest) is None:
                try:
                    rt.blobs.copy(key, dest, if_match=etag)
                except Replaced:
                    raise StagingReplaced(f"batch {rec.batch_id}: the bundle changed after "
                                          "it was checked") from None
            copied = True
            fault("copied")
        accepted = {i: d.revision for i, d in decisions.items() if isinstance(d, core.Accept)}
        try:
            _commit_groups(rt, rec, accepted, dest, offsets, now, fault, keep_locks, gc_gen)
        except FenceLost:
            rec = rt.batches.get(rec.batch_id) or rec  # what other runs committed
            if gc_gen is not None and rt.gc.fence(rec.user_id).gen != gc_gen:
                missing, gc_gen = missing_chunks(rt, rec)  # the collector doomed objects
            continue
        finals = {i: r for i, d in decisions.items() if (r := result_of(d)) is not None}
        rt.batches.write_results(rec, finals)
        break
    else:
        raise BatchFenceLostTooOften(f"batch {rec.batch_id}: the fence was lost "
                                     f"{MAX_FENCE_RETRIES} times")
    rec = rt.batches.get(rec.batch_id) or rec
    if rec.open_entries():  # only if another run is still at work on them
        return BatchOutcome(rec.batch_id, core.PENDING, "entries still open", record=rec,
                            index=committed_chunks(rec))
    done = replace(rec, status=FINISHED)
    if not rt.batches.finish(rec.batch_id, int(now())):
        # that handler read every result before finishing: it indexes them
        return BatchOutcome(rec.batch_id, FINISHED, "finished by another handler", record=done)
    return BatchOutcome(rec.batch_id, FINISHED, "finished", done, done,
                        index=committed_chunks(done))


def _commit_groups(rt: Runtime, rec: BatchRecord, accepted: dict[int, int], dest: str,
                   offsets: list[int], now: Clock, fault: Fault,
                   keep_locks: KeepLocks, gc_gen: int | None = None) -> None:
    """Commit the accepted entries group by group, holding the user's feed
    lock across the groups when Redis gives it (so the batch's seqs are one
    range and other batches wait rather than lose the fence). Best effort:
    the fence alone decides."""
    if not accepted:
        return
    user = rec.user_id
    groups = plan_groups(sorted(accepted), {i: entry_bytes(rec.entries[i]) for i in accepted})
    expires = rec.created + rt.settings.record_ttl_s  # the group items go with the record
    with feed_turn(rt, user) as hint:
        last = rt.meta.feed_head(user) if hint is None else hint
        for group in groups:
            keep_locks()  # a big batch may outlast the locks' TTL
            seqs = group_seqs(last, group)
            rt.batches.commit_group(rec, {i: accepted[i] for i in group}, seqs, last, dest,
                                    offsets, int(now()), expires, gc_gen)
            last = seqs[group[-1]]
            fault("committed")
        # Once for the batch: a crash before this only costs a stale hint (one
        # lost fence). The chunk index is written by commit_batch, after the
        # wake-up.
        rt.locks.remember_seq(user, last)


def notify_batch(rt: Runtime, rec: BatchRecord, now: Clock) -> None:
    """ONE wake-up round trip (the batch's long polls, with every verdict,
    and the feed's readers) and ONE push to the user's devices: a v1
    upload's in the v1 shape (`type` "upload"), which v1 clients wait for."""
    body = batch_body(rec)
    payloads = {batch_topic(rec.batch_id): json.dumps(body).encode()}
    # A feed reader waits at the head it last read: before the batch, or
    # (had it read between two groups) at a group's end. Wake them all.
    for r in rec.results.values():
        if r.seq is not None:
            payloads[feed_topic(rec.user_id, r.seq - 1)] = b"1"
    rt.waker.wake_each(payloads)
    cursor, ms = feed_cursor(rec), int(now() * 1000)
    message = batch_result(body, cursor, ms) if rec.detached is None else \
        upload_result(upload_body(rec.batch_id, rec.entries[0], body["entries"][0]), cursor, ms)
    try:
        rt.notifier.upload_finished(rec.user_id, rec.device_id, message)
    except Exception as exc:  # noqa: BLE001 - the commit stands whatever happens here
        log.warning("push failed, the batch stands: %s", type(exc).__name__)


def expire_batch(rt: Runtime, rec: BatchRecord, reason: str, now: float) -> bool:
    """The sweeper's end for a batch whose bundle never arrived: every open
    entry rejected, woken and pushed like a commit's result. True if this
    call finished it."""
    rt.batches.write_results(rec, {i: EntryResult(core.REJECTED, reason=reason)
                                   for i in rec.open_entries()})
    rec = rt.batches.get(rec.batch_id) or rec
    if rec.open_entries() or not rt.batches.finish(rec.batch_id, int(now)):
        return False
    notify_batch(rt, replace(rec, status=FINISHED), lambda: now)
    return True
