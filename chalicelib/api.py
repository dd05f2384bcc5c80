"""What each HTTP route does, as plain functions of (runtime, caller, input).

Handlers in app.py only translate HTTP to these calls; every error is a
SealsyncError carrying its status, mapped to a response in one place.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from . import billing, regions
from .config import Runtime
from .core import signatures as sig
from .core import tokens
from .core.batch import (
    FINISHED,
    BatchRecord,
    BatchRequest,
    batch_body,
    parse_draft,
    resolve,
)
from .core.billing import check_email
from .core.decide import PENDING, TERMINAL
from .core.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge, Unauthorized
from .core.ids import check_chunk_id, check_id, chunk_key, new_id, staging_key
from .core.packs import PackDecl, packed_chunks, parse_packs
from .core.quota import Adding
from .core.records import batch_topic, feed_topic
from .core.requests import only_fields, query_int
from .core.tokens import Claims
from .limits import charge_account
from .pack_reads import pack_urls
from .quota import check_quota

Body = dict[str, Any]
MAX_DEVICES = 100  # per account, revoked ones included (their ids stay taken)
MAX_NAME_BYTES = 256  # a sealed device name
_HEX = re.compile(r"[0-9a-f]*")


# -- accounts and devices -------------------------------------------------
def create_account(rt: Runtime, body: Body) -> Body:
    """A new account, homed in the region the client picked (`region`, from
    the operator's list; default: this one). A pick of another region is
    answered with that region's URL (421): each region signs up its own."""
    only_fields(body, {"auth_key", "kdf", "signing_key", "email", "region"})
    auth_key = tokens.check_auth_key(body.get("auth_key"))
    signing_key = None if body.get("signing_key") is None else \
        sig.parse_key(body.get("signing_key"), "signing_key")
    email = check_email(body.get("email"))  # optional: the one thing given up for mail
    kdf = body.get("kdf", "")
    if not isinstance(kdf, str) or _utf8_len(kdf) > rt.settings.limits.max_kdf_bytes:
        raise BadRequest(f"kdf must be a string of at most "
                         f"{rt.settings.limits.max_kdf_bytes} bytes of UTF-8")
    home = regions.new_home(rt, body.get("region"))
    user_id, salt = regions.claim_id(rt, home, int(time.time())), secrets.token_bytes(16)
    rt.accounts.create(user_id, salt, tokens.verifier(salt, auth_key), kdf, int(time.time()))
    if signing_key is not None:
        rt.devices.set_signing_key(user_id, signing_key)
    billing.on_signup(rt, user_id, email, int(time.time()))
    return {"user_id": user_id, "region": home}


def _utf8_len(text: str) -> int:
    """Encoded length; a lone surrogate (JSON allows "\\ud800") counts as too
    long, since the store cannot encode it."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return 2**63


def account_kdf(rt: Runtime, user_id: str) -> Body:
    rt = regions.serving(rt, check_id(user_id, "user id"), write=False)
    account = rt.accounts.get(user_id)
    if account is None:
        raise NotFound("no such account")
    return {"user_id": user_id, "kdf": account["kdf"]}


def _authenticate(rt: Runtime, body: Body, fields: set[str],
                  write: bool) -> tuple[Runtime, str]:
    """The account's serving Runtime (regions.serving) and its id, once the
    auth key checks out."""
    only_fields(body, fields)
    user_id = check_id(body.get("user_id"), "user_id")
    rt = regions.serving(rt, user_id, write)
    auth_key = tokens.check_auth_key(body.get("auth_key"))
    account = rt.accounts.get(user_id)
    if account is None or not tokens.matches(account["salt"], auth_key, account["verifier"]):
        raise Unauthorized("unknown account or wrong auth_key")
    return rt, user_id


def _token(rt: Runtime, user_id: str, device_id: str) -> Body:
    now = int(time.time())
    ttl = rt.settings.token_ttl_s
    token = tokens.issue(rt.settings.token_secret, user_id, device_id, now, ttl)
    return {"user_id": user_id, "device_id": device_id, "token": token,
            "expires_at": now + ttl}


def add_device(rt: Runtime, body: Body, source_ip: str = "an unknown address") -> Body:
    """Enrol a device: its Ed25519 key, vouched for by the account's signing
    key (`device_sig` over core.signatures.device_message). An account from
    before device keys registers its signing key here, once (`signing_key`,
    proved by the auth key: trust on first use; docs/DESIGN.md)."""
    rt, user_id = _authenticate(rt, body, {"user_id", "auth_key", "device_id", "device_key",
                                           "device_sig", "signing_key", "name"}, write=True)
    charge_account(rt, "devices", user_id)
    device_id = check_id(body.get("device_id"), "device_id")
    device_key = sig.parse_key(body.get("device_key"), "device_key")
    vouch = sig.parse_sig(body.get("device_sig"), "device_sig")
    name = _sealed_name(body.get("name"))
    offered = None if body.get("signing_key") is None else \
        sig.parse_key(body.get("signing_key"), "signing_key")
    account_key = rt.devices.signing_key(user_id)
    if account_key is not None and offered not in (None, account_key):
        raise Unauthorized("signing_key is not this account's signing key")
    key = account_key or offered
    if key is None:
        raise BadRequest("this account has no signing key yet: send signing_key")
    if not sig.verify(key, sig.device_message(user_id, device_id, device_key), vouch):
        raise Unauthorized("device_sig is not the account key's signature of this device")
    if account_key is None and not rt.devices.set_signing_key(user_id, key):
        raise Conflict("another signing key was registered for this account meanwhile")
    if rt.devices.count(user_id) >= MAX_DEVICES:
        raise Forbidden(f"an account may enrol at most {MAX_DEVICES} devices, revoked "
                        "ones included")
    now = int(time.time())
    if not rt.devices.register(user_id, sig.Device(device_id, device_key, None, now, name)):
        raise Conflict("this device_id is already enrolled (or was revoked): pick a new one")
    billing.on_device(rt, user_id, device_id, now, source_ip)
    return _token(rt, user_id, device_id)


def _sealed_name(value: object) -> bytes:
    """The device's name, sealed by the client: opaque hex, bounded."""
    if value is None:
        return b""
    if not isinstance(value, str) or len(value) > 2 * MAX_NAME_BYTES \
            or not _HEX.fullmatch(value) or len(value) % 2:
        raise BadRequest(f"name must be the sealed device name as lowercase hex, at most "
                         f"{MAX_NAME_BYTES} bytes")
    return bytes.fromhex(value)


def new_token(rt: Runtime, body: Body) -> Body:
    rt, user_id = _authenticate(rt, body, {"user_id", "auth_key", "device_id"}, write=False)
    charge_account(rt, "tokens", user_id)
    device_id = check_id(body.get("device_id"), "device_id")
    device = rt.devices.get(user_id, device_id)
    if device is None or device.revoked_at is not None:
        raise Unauthorized("unknown or revoked device for this account")
    return _token(rt, user_id, device_id)


def list_devices(rt: Runtime, who: Claims) -> Body:
    """Every device of the account, revoked ones too; names stay sealed."""
    return {"devices": [
        {"device_id": d.device_id, "created": d.created, "revoked_at": d.revoked_at,
         "name": d.name.hex(), "can_write": d.can_write,
         "current": d.device_id == who.device_id}
        for d in sorted(rt.devices.list(who.user_id), key=lambda d: (d.created, d.device_id))]}


def revoke_device(rt: Runtime, who: Claims, device_id: str,
                  params: dict[str, str] | None) -> Body:
    """Revoke a device: its writes stop at once (presign and commit check),
    its reads when the authorizer's cached answer expires. The request must
    carry the account key's signature (`signature`, core.signatures
    .revoke_message), so a leaked token cannot lock the owner's devices out."""
    device_id = check_id(device_id, "device id")
    vouch = sig.parse_sig((params or {}).get("signature"), "query parameter signature")
    key = rt.devices.signing_key(who.user_id)
    if key is None or not sig.verify(key, sig.revoke_message(who.user_id, device_id), vouch):
        raise Forbidden("signature is not the account key's signature revoking this device")
    now = int(time.time())
    if not rt.devices.revoke(who.user_id, device_id, now):
        raise NotFound("no such device")
    # Push stops at once too: its WebSocket connections and mobile
    # registration are forgotten (a reconnect is refused by ws_connect).
    for conn in rt.registry.targets(who.user_id, now).connections:
        if conn.device_id == device_id:
            rt.registry.remove_connection(conn.connection_id, who.user_id)
    rt.registry.remove_mobile(who.user_id, device_id)
    got = rt.devices.get(who.user_id, device_id)
    return {"device_id": device_id, "revoked_at": got.revoked_at if got else None}


def writer(rt: Runtime, who: Claims) -> None:
    """A write (presign) is refused at once for a revoked device, whatever
    the authorizer's cache says, and for one enrolled without a key."""
    device = rt.devices.get(who.user_id, who.device_id)
    if device is None or device.revoked_at is not None:
        raise Unauthorized("this device was revoked")
    if device.public_key is None:
        raise Forbidden("this device has no registered key: enrol it again to upload")


def caller(rt: Runtime, bearer: str | None) -> Claims:
    """The authorizer's check: a signed, unexpired token of a device that
    is not revoked. API Gateway caches this answer per token for the
    authorizer's TTL: that is how long a revoked device can still read."""
    token = (bearer or "").removeprefix("Bearer ").strip()
    who = tokens.verify(rt.settings.token_secret, token, int(time.time()))
    rt = regions.serving(rt, who.user_id, write=False)  # elsewhere: WrongRegion
    device = rt.devices.get(who.user_id, who.device_id)
    if device is None or device.revoked_at is not None:
        raise Unauthorized("this device was revoked")
    return who


# -- batches (docs/DESIGN.md, "Batches") -------------------------------------------
def create_batch(rt: Runtime, who: Claims, body: Body) -> Body:
    """POST /v1/batches: validate, then open the batch."""
    limits = rt.settings.limits
    draft = parse_draft(body, limits)
    # Only entries sent against their base (chunk ranges) need it read.
    wanted = draft.bases()
    req = resolve(draft, rt.meta.revisions(who.user_id, wanted) if wanted else {}, limits)
    packs = parse_packs(body.get("packs"), limits, req.chunk_sizes)
    return open_batch(rt, who, req, packs)


def record_batch(rt: Runtime, who: Claims, req: BatchRequest,
                 packs: tuple[PackDecl, ...] = (),
                 detached: tuple[bytes | None, ...] | None = None) -> BatchRecord:
    """Check the device may write, then record the batch (the only thing
    its commit will trust), its packs first: a commit that sees the record
    sees its packs too. Every upload, v1's included, starts here."""
    writer(rt, who)
    billing.check_writable(rt, who.user_id)
    check_quota(rt, who.user_id, [Adding(e.base_revision, e.manifest_size, len(e.chunk_ids),
                                         e.size) for e in req.entries])  # deletes pass
    now = int(time.time())
    rec = BatchRecord(new_id(), who.user_id, who.device_id, req.entries, PENDING, now,
                      detached=detached)
    rt.packs.declare(rec.batch_id, packs, now + rt.settings.record_ttl_s)
    rt.batches.create(rec, now + rt.settings.record_ttl_s)
    return rec


def open_batch(rt: Runtime, who: Claims, req: BatchRequest,
               packs: tuple[PackDecl, ...] = (),
               detached: tuple[bytes | None, ...] | None = None) -> Body:
    """Record the batch and presign one PUT for the bundle and one per
    chunk the server lacks (and one per pack)."""
    rec = record_batch(rt, who, req, packs, detached)
    batch_id, now = rec.batch_id, rec.created
    # Chunks a range of a base names are a committed revision's: stored
    # (the commit still checks every chunk), so neither looked up nor
    # presigned; nor are those in a pack of this batch.
    packed = packed_chunks(packs)
    named = [c for c in req.chunk_sizes if c not in req.from_base and c not in packed]
    known = rt.meta.known_chunks(who.user_id, named) | packed | req.from_base
    chunk_urls = {c: rt.blobs.presign_put(chunk_key(who.user_id, c), size, create_only=True)
                  for c, size in req.chunk_sizes.items() if c not in known}
    rt.usage.count_requests(who.user_id, now, puts=1 + len(chunk_urls) + len(packs))
    return {
        **pack_urls(rt, who.user_id, packs),
        "batch_id": batch_id,
        # Create-only, and bound to bundle_sha256 when declared: send
        # bundle_headers with the PUT (docs/SECURITY.md).
        # (rec.bundle_size: a v1 upload's is its manifest alone, `detached`)
        "bundle_url": rt.blobs.presign_put(staging_key(who.user_id, batch_id),
                                           rec.bundle_size, True, req.bundle_sha256),
        "bundle_headers": rt.blobs.put_headers(True, req.bundle_sha256),
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
    return batch_body_waiting(rt, rec, wait)


def batch_body_waiting(rt: Runtime, rec: BatchRecord, wait: int) -> Body:
    """The batch's body, waiting up to `wait` s for it to finish when it is
    pending (GET /v1/batches/{id}, and the v1 wrapper's GET /v1/uploads/{id})."""
    if rec.status == PENDING and wait:
        woken = rt.waker.wait(batch_topic(rec.batch_id), wait)
        if woken is not None:
            return _woken_batch(woken, rec) or batch_body(rt.batches.get(rec.batch_id) or rec)
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


def missing_chunks(rt: Runtime, who: Claims, body: Body) -> Body:
    """POST /v1/chunks/missing {chunks: [ids]}: which of these chunks the
    server has not stored, so a client packs only those (docs/DESIGN.md
    "Packs"). Stateless; it tells a user only about their own chunks."""
    only_fields(body, {"chunks"})
    raw = body.get("chunks")
    limit = rt.settings.limits.max_batch_chunks
    if not isinstance(raw, list):
        raise BadRequest("chunks must be a list of chunk ids")
    if len(raw) > limit:
        raise TooLarge(f"ask about at most {limit} chunks at once")
    wanted = {check_chunk_id(c) for c in raw}
    return {"missing": sorted(wanted - rt.meta.known_chunks(who.user_id, wanted))}


# -- the change feed (the file reads: files.py) ----------------------------------
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
