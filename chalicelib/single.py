"""The v1 single-file routes, as thin wrappers over a batch of one
(docs/DESIGN.md "One protocol"). Nothing here commits: each route
validates its v1 input, opens a batch through api.py like POST
/v1/batches does, and translates the answer back into the v1 shape. The
commit, the sweeper and the long poll only ever know batches.

  POST   /v1/uploads        a batch of one; upload_id is the batch id, and
                            manifest_url is its bundle URL (the manifest
                            alone: the v1 signature came in the body, and
                            the record keeps it: BatchRecord.detached)
  GET    /v1/uploads/{id}   the one entry's verdict, long poll included
  DELETE /v1/files/{id}     a batch of one tombstone whose (empty) bundle
                            the API stages itself
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import api
from .config import Runtime
from .core import signatures as sig
from .core.batch import batch_of_one, upload_body
from .core.errors import BadRequest, NotFound
from .core.ids import check_id, staging_key
from .core.requests import UploadRequest, parse_upload, query_int, sha256_field
from .core.tokens import Claims

Body = dict[str, Any]


def _signature(value: object, what: str) -> bytes | None:
    """A device signature if one is sent; without one the commit rejects the
    upload ("unsigned"), like a batch entry the bundle carries none for."""
    return None if value is None else sig.parse_sig(value, what)


def create_upload(rt: Runtime, who: Claims, body: Body) -> Body:
    signature = _signature(body.get("signature"), "signature")
    digest = sha256_field(body.get("manifest_sha256"), "manifest_sha256")
    single = parse_upload({k: v for k, v in body.items()
                           if k not in ("signature", "manifest_sha256")}, rt.settings.limits)
    req = replace(batch_of_one(single), bundle_sha256=digest)  # the bundle IS the manifest
    opened = api.open_batch(rt, who, req, detached=(signature,))
    # Create-only, and bound to manifest_sha256 when declared: send
    # manifest_headers with the PUT (docs/SECURITY.md).
    return {"upload_id": opened["batch_id"], "manifest_url": opened["bundle_url"],
            "manifest_headers": opened["bundle_headers"],
            **{k: opened[k] for k in ("chunk_urls", "chunk_headers", "expires_at")}}


def delete_file(rt: Runtime, who: Claims, file_id: str, params: dict[str, str] | None) -> Body:
    """A delete is a tombstone through the same truth system: a batch of
    one whose empty bundle the API writes itself, decided by the commit
    handler on its event. It must carry the device's signature of that
    tombstone (`signature`: core.signatures.entry_message with the
    tombstone flag, size 0, no chunks), checked at commit like any entry; a
    token alone deletes nothing (issue 15). Clients send their deletes as
    signed tombstone manifests in batches instead, which their history can
    verify."""
    file_id = check_id(file_id, "file id")
    if (params or {}).get("base_revision") is None:
        raise BadRequest("query parameter base_revision is required")
    base = query_int(params, "base_revision", 0, 1, 2**53)
    signature = _signature((params or {}).get("signature"), "query parameter signature")
    tombstone = UploadRequest(file_id, base, 0, (), ())
    rec = api.record_batch(rt, who, batch_of_one(tombstone, tombstone=True),
                           detached=(signature,))
    rt.blobs.put(staging_key(who.user_id, rec.batch_id), b"")
    return {"upload_id": rec.batch_id, "status": rec.status}


def upload_status(rt: Runtime, who: Claims, upload_id: str,
                  params: dict[str, str] | None) -> Body:
    """The upload's state; with wait=N, answer the moment it is decided."""
    upload_id = check_id(upload_id, "upload id")
    wait = query_int(params, "wait", 0, 0, rt.settings.limits.max_wait_s)
    rec = rt.batches.get(upload_id)
    if rec is None or rec.user_id != who.user_id or len(rec.entries) != 1:
        raise NotFound("no such upload")
    body = api.batch_body_waiting(rt, rec, wait)
    return upload_body(upload_id, rec.entries[0], body["entries"][0])
