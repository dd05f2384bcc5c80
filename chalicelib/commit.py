"""The commit pipeline: one staging object in, one terminal result out.
(A batch's staging object goes to batch_commit.py: same steps, per entry.)

  1 look up the server's own upload record (trust nothing written into S3)
  2 take the Redis lock lock:{user}:{file}
  3 check the manifest's real size, that every chunk exists, and the
    device's signature over the staged bytes (signing.py)
  4 decide (pure core), copy the manifest into place
  5 ONE fenced transaction: head + revision + feed entry + result, under the
    user's short feed lock when Redis gives it (efficiency only; the fence stays)
  6 delete the staging object, release the lock, wake long-pollers

The manifest is copied BEFORE the transaction, so a head never points at an
object that is not stored (invariant 5), and a crash at any step leaves
something a retry finishes. `fault(step)` lets tests pause or crash at each
step boundary.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote_plus

from .adapters.blobs import Replaced
from .adapters.meta import AlreadyFinished, FenceLost
from .batch_commit import StagingReplaced, commit_batch
from .config import Runtime
from .core import decide as core
from .core.batch import BatchRecord
from .core.errors import BadRequest
from .core.ids import chunk_key, manifest_key, parse_staging_key
from .core.notices import upload_result
from .core.records import UploadRecord, feed_topic, upload_topic
from .core.signatures import overridden
from .feed import feed_turn
from .push import notify_upload
from .signing import upload_problem

log = logging.getLogger("sealsync.commit")
Fault = Callable[[str], None]
MAX_FENCE_RETRIES = 20


def no_fault(step: str) -> None:
    """The production fault hook: nothing."""


@dataclass(frozen=True)
class Outcome:
    """What one event did; `status` is the upload's state after it."""

    upload_id: str | None
    status: str
    detail: str = ""
    # The result THIS invocation wrote, pushed once the lock is released.
    result: dict[str, Any] | None = field(default=None, compare=False)


def missing_chunks(rt: Runtime, rec: UploadRecord) -> tuple[int, int | None]:
    """How many referenced chunks are absent. The index answers for chunks a
    committed version already uses; S3 HEAD answers for the rest, after the
    collector's fence is read (a doomed chunk is absent; pack_commit.py).
    Also the fence's generation (None: every chunk was known)."""
    unknown = sorted(set(rec.chunk_ids) - rt.meta.known_chunks(rec.user_id, rec.chunk_ids))
    if not unknown:
        return 0, None
    fence = rt.gc.fence(rec.user_id)
    absent = set(rt.blobs.missing([chunk_key(rec.user_id, c) for c in unknown]))
    return sum(1 for c in unknown if chunk_key(rec.user_id, c) in absent
               or c in fence.doomed_chunks), fence.gen


def commit_staging_object(rt: Runtime, key: str, fault: Fault = no_fault,
                          now: Callable[[], float] = time.time) -> Outcome:
    """Run the pipeline for one staging key. Raises only retryable errors
    (Redis or AWS unavailable, lock busy); bad input becomes an Outcome."""
    try:
        user_id, upload_id = parse_staging_key(key)
    except BadRequest as exc:
        log.warning("ignoring object outside staging: %s", exc.message)
        return Outcome(None, "ignored", exc.message)
    found = rt.batches.get_record(upload_id)  # one read, whichever it is
    if isinstance(found, BatchRecord) and found.user_id == user_id:
        done = commit_batch(rt, key, found, fault, now)  # a batch's bundle
        return Outcome(upload_id, done.status, done.detail)
    rec = found if isinstance(found, UploadRecord) else None
    if rec is None or rec.user_id != user_id:
        # Unknown, or written under another user's prefix: never commit it.
        # The object is removed so it cannot linger (the sweeper would too).
        rt.blobs.delete(key)
        log.warning("deleted staging object with no upload record: %s", upload_id)
        return Outcome(upload_id, "ignored", "no such upload for this user")
    if rec.status in core.TERMINAL:
        rt.blobs.delete(key)  # a duplicate event or a replayed PUT
        return Outcome(upload_id, rec.status, "duplicate")

    lock_key = rt.locks.key(user_id, rec.file_id)
    with rt.locks.held(lock_key):
        fault("locked")
        # Read again under the lock: a duplicate event that read `pending`
        # before another handler finished the upload must not decide on it
        # (it would report `pending`, or copy a replayed PUT over the
        # committed manifest).
        rec = rt.meta.get_upload(upload_id) or rec
        outcome = _decide_and_write(rt, key, rec, fault, now)
        if outcome.status != core.PENDING:
            rt.blobs.delete(key)
        fault("cleaned")
    if outcome.result is not None:  # after the durable write; never fails the commit
        notify_upload(rt, rec, outcome.result)
    return outcome


def _decide_and_write(rt: Runtime, key: str, rec: UploadRecord, fault: Fault,
                      now: Callable[[], float]) -> Outcome:
    stat = rt.blobs.stat(key)
    size, etag = (None, None) if stat is None else (stat.size, stat.etag)
    missing, gc_gen = missing_chunks(rt, rec) if size is not None else (0, None)
    # Signed by the presigning device for exactly these bytes (the object of `etag`)?
    try:
        problem = upload_problem(rt, key, rec, etag) if size == rec.manifest_size else None
    except Replaced:
        raise StagingReplaced(f"upload {rec.upload_id}: the manifest changed while "
                              "checked") from None
    problems = {} if problem is None else {0: problem}
    fault("checked")
    proposal = core.Proposal(status=rec.status, base_revision=rec.base_revision,
                             declared_size=rec.manifest_size, actual_size=size,
                             missing_chunks=missing, tombstone=rec.tombstone)
    dest: str | None = None
    for _ in range(MAX_FENCE_RETRIES):
        head = rt.meta.get_head(rec.user_id, rec.file_id)
        decision = overridden({0: core.decide(head.revision if head else 0,
                                              head.deleted if head else False, proposal)},
                              problems)[0]
        fault("decided")
        try:
            if isinstance(decision, core.Skip):
                return Outcome(rec.upload_id, rec.status, decision.reason)
            if isinstance(decision, core.Reject):
                rt.meta.finish(rec.upload_id, core.REJECTED, int(now()),
                               reason=decision.reason)
                result = _result(rec, core.REJECTED, reason=decision.reason)
                wake_waiters(rt, rec, result)
                return Outcome(rec.upload_id, core.REJECTED, decision.reason, result)
            if dest is None and not rec.tombstone:
                # Kept for conflicts too: the loser's bytes stay retrievable.
                dest = manifest_key(rec.user_id, rec.file_id, rec.upload_id)
                # Copy once: a retry after a crash, or a handler whose lock
                # expired, must not copy a replayed PUT over the first copy.
                if rt.blobs.size(dest) is None:
                    try:  # only the bytes checked above (batch_commit.py)
                        rt.blobs.copy(key, dest, if_match=etag)
                    except Replaced:
                        raise StagingReplaced(f"upload {rec.upload_id}: the manifest "
                                              "changed after it was checked") from None
                fault("copied")
            if isinstance(decision, core.Conflict):
                rt.meta.finish(rec.upload_id, core.CONFLICT, int(now()),
                               winner=decision.winner_revision, mkey=dest)
                result = _result(rec, core.CONFLICT, winner_revision=decision.winner_revision)
                wake_waiters(rt, rec, result)
                return Outcome(rec.upload_id, core.CONFLICT,
                               f"head is at revision {decision.winner_revision}", result)
            with feed_turn(rt, rec.user_id) as last:
                seq = rt.meta.commit_accept(rec, decision.revision, dest, int(now()), last,
                                            gc_gen)
                rt.locks.remember_seq(rec.user_id, seq)
        except FenceLost:
            if gc_gen is not None and rt.gc.fence(rec.user_id).gen != gc_gen:
                # the collector doomed objects since we checked: check again
                missing, gc_gen = missing_chunks(rt, rec)
                proposal = replace(proposal, missing_chunks=missing)
            continue  # someone committed under us (lock lost): decide again
        except AlreadyFinished:
            done = rt.meta.get_upload(rec.upload_id)
            return Outcome(rec.upload_id, done.status if done else "unknown",
                           "finished by another handler")
        fault("committed")
        rt.meta.remember_chunks(rec.user_id, rec.chunk_ids)
        result = _result(rec, core.ACCEPTED, revision=decision.revision, cursor=seq)
        wake_waiters(rt, rec, result, seq)
        return Outcome(rec.upload_id, core.ACCEPTED, f"revision {decision.revision}", result)
    raise FenceLostTooOften(rec.upload_id)


class FenceLostTooOften(RuntimeError):
    """Pathological contention: let the event be retried."""


def _result(rec: UploadRecord, status: str, **fields: Any) -> dict[str, Any]:
    return upload_result(rec.upload_id, rec.file_id, status, rec.base_revision,
                         committed_ms=int(time.time() * 1000), **fields)


def wake_waiters(rt: Runtime, rec: UploadRecord, result: dict[str, Any],
                 seq: int | None = None) -> None:
    """Wake the upload's long polls with its terminal result (after the
    durable write), and the feed's when it moved to `seq`."""
    payloads = {upload_topic(rec.upload_id): json.dumps(result).encode()}
    if seq is not None:
        payloads[feed_topic(rec.user_id, seq - 1)] = b"1"
    rt.waker.wake_each(payloads)


# -- event shapes -------------------------------------------------------------
def staging_keys_from_s3_event(event: Any) -> list[str]:
    """Keys of ObjectCreated records in an S3 notification (decoded: S3 and
    moto URL-encode keys). Test events and malformed records yield nothing."""
    if not isinstance(event, dict):
        return []
    keys = []
    records = event.get("Records")
    for record in records if isinstance(records, list) else []:
        try:
            if not str(record.get("eventName", "")).startswith("ObjectCreated"):
                continue
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
        except (AttributeError, KeyError, TypeError):
            log.warning("ignoring malformed S3 record")
    return keys


def staging_keys_from_sqs_body(body: str) -> list[str]:
    try:
        return staging_keys_from_s3_event(json.loads(body))
    except (ValueError, TypeError, RecursionError):
        log.warning("ignoring SQS message that is not JSON")
        return []


def commit_keys(rt: Runtime, keys: list[str], fault: Fault = no_fault) -> list[Outcome]:
    """Commit each key; if any failed retryably, raise after trying them all
    so the event is redelivered (finished keys are no-ops the second time)."""
    outcomes, errors = [], []
    for key in keys:
        try:
            outcomes.append(commit_staging_object(rt, key, fault))
        except Exception as exc:  # noqa: BLE001 - every failure means "retry"
            log.warning("commit failed, will be retried: %s", type(exc).__name__)
            errors.append(exc)
    if errors:
        raise errors[0]
    return outcomes


def failed_messages(rt: Runtime, messages: Iterable[tuple[str, str]],
                    fault: Fault = no_fault) -> list[str]:
    """Commit each SQS message `(message_id, body)`; return the ids of those
    that failed retryably. With ReportBatchItemFailures only these come back,
    not the whole batch (their keys are no-ops if they had half-finished)."""
    failed = []
    for message_id, body in messages:
        try:
            commit_keys(rt, staging_keys_from_sqs_body(body), fault)
        except Exception:  # noqa: BLE001 - commit_keys logged it; SQS retries it
            failed.append(message_id)
    return failed
