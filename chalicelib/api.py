"""What each HTTP route does, as plain functions of (runtime, caller, input).

Handlers in app.py only translate HTTP to these calls; every error is a
SealsyncError carrying its status, mapped to a response in one place.
"""
from __future__ import annotations

import json
import secrets
import time
from dataclasses import replace
from typing import Any

from . import billing
from .config import Runtime
from .core import tokens
from .core.batch import FINISHED, BatchRecord, batch_body, parse_batch
from .core.billing import check_email
from .core.decide import PENDING, TERMINAL
from .core.errors import BadRequest, Conflict, NotFound, Unauthorized
from .core.ids import check_id, chunk_key, new_id, staging_key
from .core.records import UploadRecord, Version, batch_topic, feed_topic, upload_topic
from .core.requests import only_fields, parse_upload, query_int
from .core.tokens import Claims

Body = dict[str, Any]


# -- accounts and devices -------------------------------------------------
def create_account(rt: Runtime, body: Body) -> Body:
    only_fields(body, {"auth_key", "kdf", "email"})
    auth_key = tokens.check_auth_key(body.get("auth_key"))
    email = check_email(body.get("email"))  # optional: the one thing given up for mail
    kdf = body.get("kdf", "")
    if not isinstance(kdf, str) or _utf8_len(kdf) > rt.settings.limits.max_kdf_bytes:
        raise BadRequest(f"kdf must be a string of at most "
                         f"{rt.settings.limits.max_kdf_bytes} bytes of UTF-8")
    user_id, salt = new_id(), secrets.token_bytes(16)
    rt.accounts.create(user_id, salt, tokens.verifier(salt, auth_key), kdf, int(time.time()))
    billing.on_signup(rt, user_id, email, int(time.time()))
    return {"user_id": user_id}


def _utf8_len(text: str) -> int:
    """Encoded length; a lone surrogate (JSON allows "\\ud800") counts as too
    long, since the store cannot encode it."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return 2**63


def account_kdf(rt: Runtime, user_id: str) -> Body:
    account = rt.accounts.get(check_id(user_id, "user id"))
    if account is None:
        raise NotFound("no such account")
    return {"user_id": user_id, "kdf": account["kdf"]}


def _authenticate(rt: Runtime, body: Body, fields: set[str]) -> str:
    only_fields(body, fields)
    user_id = check_id(body.get("user_id"), "user_id")
    auth_key = tokens.check_auth_key(body.get("auth_key"))
    account = rt.accounts.get(user_id)
    if account is None or not tokens.matches(account["salt"], auth_key, account["verifier"]):
        raise Unauthorized("unknown account or wrong auth_key")
    return user_id


def _token(rt: Runtime, user_id: str, device_id: str) -> Body:
    now = int(time.time())
    ttl = rt.settings.token_ttl_s
    token = tokens.issue(rt.settings.token_secret, user_id, device_id, now, ttl)
    return {"user_id": user_id, "device_id": device_id, "token": token,
            "expires_at": now + ttl}


def add_device(rt: Runtime, body: Body, source_ip: str = "an unknown address") -> Body:
    user_id = _authenticate(rt, body, {"user_id", "auth_key"})
    device_id, now = new_id(), int(time.time())
    rt.accounts.add_device(user_id, device_id, now)
    billing.on_device(rt, user_id, device_id, now, source_ip)
    return _token(rt, user_id, device_id)


def new_token(rt: Runtime, body: Body) -> Body:
    user_id = _authenticate(rt, body, {"user_id", "auth_key", "device_id"})
    device_id = check_id(body.get("device_id"), "device_id")
    if not rt.accounts.has_device(user_id, device_id):
        raise Unauthorized("unknown device for this account")
    return _token(rt, user_id, device_id)


def caller(rt: Runtime, bearer: str | None) -> Claims:
    """The authorizer's check: a signed, unexpired token for a user."""
    token = (bearer or "").removeprefix("Bearer ").strip()
    return tokens.verify(rt.settings.token_secret, token, int(time.time()))


# -- uploads ----------------------------------------------------------------
def create_upload(rt: Runtime, who: Claims, body: Body) -> Body:
    req = parse_upload(body, rt.settings.limits)
    billing.check_writable(rt, who.user_id)
    upload_id, now = new_id(), int(time.time())
    rec = UploadRecord(upload_id=upload_id, user_id=who.user_id, device_id=who.device_id,
                       file_id=req.file_id, base_revision=req.base_revision,
                       manifest_size=req.manifest_size, chunk_ids=req.chunk_ids,
                       size=sum(req.chunk_sizes) + req.manifest_size, tombstone=False,
                       status=PENDING, created=now)
    known = rt.meta.known_chunks(who.user_id, req.chunk_ids)
    rt.meta.create_upload(rec, now + rt.settings.record_ttl_s)
    need: dict[str, str] = {}
    for chunk_id, size in zip(req.chunk_ids, req.chunk_sizes, strict=True):
        if chunk_id not in known and chunk_id not in need:
            need[chunk_id] = rt.blobs.presign_put(chunk_key(who.user_id, chunk_id), size,
                                                  create_only=True)
    rt.usage.count_requests(who.user_id, now, puts=1 + len(need))
    return {
        "upload_id": upload_id,
        "manifest_url": rt.blobs.presign_put(staging_key(who.user_id, upload_id),
                                             req.manifest_size),
        "chunk_urls": need,
        # Send these with every chunk PUT; 412 means the chunk already exists.
        "chunk_headers": {"If-None-Match": "*"},
        "expires_at": now + rt.settings.upload_ttl_s,
    }


def delete_file(rt: Runtime, who: Claims, file_id: str, params: dict[str, str] | None) -> Body:
    """A delete is a tombstone upload through the same truth system: the API
    writes an empty staging object, whose event the commit handler decides."""
    file_id = check_id(file_id, "file id")
    if (params or {}).get("base_revision") is None:
        raise BadRequest("query parameter base_revision is required")
    base = query_int(params, "base_revision", 0, 1, 2**53)
    billing.check_writable(rt, who.user_id)
    upload_id, now = new_id(), int(time.time())
    rec = UploadRecord(upload_id=upload_id, user_id=who.user_id, device_id=who.device_id,
                       file_id=file_id, base_revision=base, manifest_size=0, chunk_ids=(),
                       size=0, tombstone=True, status=PENDING, created=now)
    rt.meta.create_upload(rec, now + rt.settings.record_ttl_s)
    rt.blobs.put(staging_key(who.user_id, upload_id), b"")
    return {"upload_id": upload_id, "status": PENDING}


def _upload_body(rec: UploadRecord) -> Body:
    out: Body = {"upload_id": rec.upload_id, "file_id": rec.file_id, "status": rec.status,
                 "base_revision": rec.base_revision}
    if rec.revision is not None:
        out["revision"] = rec.revision
    if rec.winner_revision is not None:
        out["winner_revision"] = rec.winner_revision
    if rec.reason:
        out["reason"] = rec.reason
    return out


def upload_status(rt: Runtime, who: Claims, upload_id: str,
                  params: dict[str, str] | None) -> Body:
    """The upload's state; with wait=N, answer the moment it is decided."""
    upload_id = check_id(upload_id, "upload id")
    wait = query_int(params, "wait", 0, 0, rt.settings.limits.max_wait_s)
    rec = rt.meta.get_upload(upload_id)
    if rec is None or rec.user_id != who.user_id:
        raise NotFound("no such upload")
    if rec.status == PENDING and wait:
        woken = rt.waker.wait(upload_topic(upload_id), wait)
        if woken is not None:
            return _woken_body(woken, rec) or _upload_body(
                rt.meta.get_upload(upload_id) or rec)
    return _upload_body(rec)


def _woken_body(payload: bytes, rec: UploadRecord) -> Body | None:
    """The answer carried by the wake-up (the result the commit wrote), if it
    is one for this upload; None means: read the record."""
    try:
        got = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(got, dict) or got.get("upload_id") != rec.upload_id \
            or got.get("status") not in TERMINAL:
        return None
    def known(key: str, kind: type) -> Any:
        return got[key] if isinstance(got.get(key), kind) else None

    return _upload_body(replace(rec, status=got["status"], revision=known("revision", int),
                                winner_revision=known("winner_revision", int),
                                reason=known("reason", str)))


# -- batches (docs/DESIGN.md, "Batches") -------------------------------------------
def create_batch(rt: Runtime, who: Claims, body: Body) -> Body:
    """Record the batch (the only thing its commit will trust) and presign
    one PUT for the bundle and one per chunk the server lacks."""
    req = parse_batch(body, rt.settings.limits)
    billing.check_writable(rt, who.user_id)
    batch_id, now = new_id(), int(time.time())
    rec = BatchRecord(batch_id, who.user_id, who.device_id, req.entries, PENDING, now)
    known = rt.meta.known_chunks(who.user_id, req.chunk_sizes)
    rt.batches.create(rec, now + rt.settings.record_ttl_s)
    chunk_urls = {c: rt.blobs.presign_put(chunk_key(who.user_id, c), size, create_only=True)
                  for c, size in req.chunk_sizes.items() if c not in known}
    rt.usage.count_requests(who.user_id, now, puts=1 + len(chunk_urls))
    return {
        "batch_id": batch_id,
        "bundle_url": rt.blobs.presign_put(staging_key(who.user_id, batch_id),
                                           req.bundle_size),
        "chunk_urls": chunk_urls,
        "chunk_headers": {"If-None-Match": "*"},
        "expires_at": now + rt.settings.upload_ttl_s,
    }


def batch_status(rt: Runtime, who: Claims, batch_id: str,
                 params: dict[str, str] | None) -> Body:
    """Every entry's verdict; with wait=N, answer the moment the batch is
    finished (one wake-up per batch carries them all)."""
    batch_id = check_id(batch_id, "batch id")
    wait = query_int(params, "wait", 0, 0, rt.settings.limits.max_wait_s)
    rec = rt.batches.get(batch_id)
    if rec is None or rec.user_id != who.user_id:
        raise NotFound("no such batch")
    if rec.status == PENDING and wait:
        woken = rt.waker.wait(batch_topic(batch_id), wait)
        if woken is not None:
            return _woken_batch(woken, rec) or batch_body(rt.batches.get(batch_id) or rec)
    return batch_body(rec)


def _woken_batch(payload: bytes, rec: BatchRecord) -> Body | None:
    """The verdicts the wake-up carries, if they are this finished batch's;
    None means: read the record."""
    try:
        got = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    entries = got.get("entries") if isinstance(got, dict) else None
    if not isinstance(entries, list) or got.get("batch_id") != rec.batch_id \
            or got.get("status") != FINISHED or len(entries) != len(rec.entries):
        return None
    for e, mine in zip(entries, rec.entries, strict=True):
        if not isinstance(e, dict) or e.get("file_id") != mine.file_id \
                or e.get("status") not in TERMINAL:
            return None
    return {"batch_id": rec.batch_id, "status": FINISHED, "entries": entries}


# -- the change feed and files ---------------------------------------------
def changes(rt: Runtime, who: Claims, params: dict[str, str] | None) -> Body:
    limits = rt.settings.limits
    cursor = query_int(params, "cursor", 0, 0, 2**53)
    limit = query_int(params, "limit", 100, 1, limits.max_page)
    wait = query_int(params, "wait", 0, 0, limits.max_wait_s)
    found = rt.meta.changes(who.user_id, cursor, limit)
    if not found:
        head = rt.meta.feed_head(who.user_id)
        if cursor > head:
            raise Conflict(f"cursor {cursor} is ahead of the feed ({head}); resync from 0")
        if wait and rt.waker.wait(feed_topic(who.user_id, cursor), wait):
            found = rt.meta.changes(who.user_id, cursor, limit)
    return {
        "changes": [{"seq": c.seq, "file_id": c.file_id, "revision": c.revision,
                     "deleted": c.deleted} for c in found],
        "cursor": found[-1].seq if found else cursor,
        "has_more": len(found) == limit,
    }


def _version_body(rt: Runtime, who: Claims, v: Version, urls: bool) -> Body:
    out: Body = {"file_id": v.file_id, "revision": v.revision, "deleted": v.deleted,
                 "size": v.size, "committed_at": v.committed, "device_id": v.device_id}
    if urls and not v.deleted and v.manifest_key:
        out["manifest_url"] = rt.blobs.presign_get(v.manifest_key, v.manifest_offset,
                                                   v.manifest_length)
        if v.manifest_offset is not None and v.manifest_length is not None:
            # Committed by a batch: the manifest is this slice of the bundle;
            # GET manifest_url with `Range: bytes=offset-(offset+length-1)`.
            out["manifest_range"] = {"offset": v.manifest_offset,
                                     "length": v.manifest_length}
        out["chunks"] = [{"id": c, "url": rt.blobs.presign_get(chunk_key(who.user_id, c))}
                         for c in dict.fromkeys(v.chunk_ids)]
    return out


def get_file(rt: Runtime, who: Claims, file_id: str, params: dict[str, str] | None) -> Body:
    file_id = check_id(file_id, "file id")
    if (params or {}).get("revision") is not None:
        rev = query_int(params, "revision", 0, 1, 2**53)
        version = rt.meta.get_revision(who.user_id, file_id, rev)
    else:
        version = rt.meta.get_head(who.user_id, file_id)
    if version is None:
        raise NotFound("no such file or revision")
    body = _version_body(rt, who, version, urls=True)
    if "manifest_url" in body:  # metered as issued: every URL, the bytes they serve
        rt.usage.count_requests(who.user_id, time.time(), gets=1 + len(body["chunks"]),
                                egress=version.size)
    return body


def file_revisions(rt: Runtime, who: Claims, file_id: str,
                   params: dict[str, str] | None) -> Body:
    file_id = check_id(file_id, "file id")
    limit = query_int(params, "limit", 100, 1, rt.settings.limits.max_page)
    before = query_int(params, "before", 0, 0, 2**53) or None
    found = rt.meta.list_revisions(who.user_id, file_id, limit, before)
    if not found and before is None:
        raise NotFound("no such file")
    return {"file_id": file_id,
            "revisions": [_version_body(rt, who, v, urls=False) for v in found]}

