"""What the file read routes do: a version with presigned GETs for its
manifest and chunks (`GET /v1/files/{id}`), a file's revisions (`GET
/v1/files/{id}/revisions`), and 410 `expired` for a revision the retention
job expired (docs/DESIGN.md "Retention rule"). Plain functions of (runtime,
caller, input), as in api.py.
"""
from __future__ import annotations

import time
from typing import Any

from .config import Runtime
from .core.errors import Expired, NotFound
from .core.ids import check_id
from .core.records import Version
from .core.requests import query_int
from .core.retention import expires_at, window_s
from .core.tokens import Claims
from .pack_reads import chunk_sources

Body = dict[str, Any]


def _version_body(rt: Runtime, who: Claims, v: Version, urls: bool) -> Body:
    out: Body = {"file_id": v.file_id, "revision": v.revision, "deleted": v.deleted,
                 "size": v.size, "committed_at": v.committed, "device_id": v.device_id}
    if urls and not v.deleted and v.manifest_key:
        out.update(_manifest_fields(rt, v))
        out.update(chunk_sources(rt, who.user_id, v.chunk_ids))
    return out


def _manifest_fields(rt: Runtime, v: Version) -> Body:
    out: Body = {"manifest_url": rt.blobs.presign_get(v.manifest_key or "", v.manifest_offset,
                                                      v.manifest_length)}
    if v.manifest_offset is not None and v.manifest_length is not None:
        # Committed by a batch: the manifest is this slice of the bundle;
        # GET manifest_url with `Range: bytes=offset-(offset+length-1)`.
        out["manifest_range"] = {"offset": v.manifest_offset, "length": v.manifest_length}
    return out


def _gone(rt: Runtime, v: Version) -> Expired:
    """410 for an expired revision: its content is gone, but its signed
    manifest is not, and a device verifying the history needs it
    (docs/DESIGN.md "Retention rule"): the body points at it."""
    details: Body = {"file_id": v.file_id, "revision": v.revision, "deleted": v.deleted,
                     "expired_at": v.expired_at or 0}
    if not v.deleted and v.manifest_key:
        details.update(_manifest_fields(rt, v))
    return Expired(f"revision {v.revision} of this file expired (superseded longer ago than "
                   "the retention window): its content is gone; its manifest stays for "
                   "the history", details)


def get_file(rt: Runtime, who: Claims, file_id: str, params: dict[str, str] | None) -> Body:
    file_id = check_id(file_id, "file id")
    if (params or {}).get("revision") is not None:
        rev = query_int(params, "revision", 0, 1, 2**53)
        version = rt.meta.get_revision(who.user_id, file_id, rev)
    else:
        version = rt.meta.get_head(who.user_id, file_id)
    if version is None:
        raise NotFound("no such file or revision")
    if version.expired_at is not None:
        raise _gone(rt, version)
    body = _version_body(rt, who, version, urls=True)
    if "manifest_url" in body:  # metered as issued: every URL, the bytes they serve
        urls = sum("url" in c for c in body["chunks"]) + len(body.get("packs", {}))
        rt.usage.count_requests(who.user_id, time.time(), gets=1 + urls,
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
    window = window_s(rt.settings.retention_days)
    rows = []
    for newer, v in zip([None, *found], found, strict=False):  # newest first
        row = _version_body(rt, who, v, urls=False)
        if v.expired_at is not None:
            row["expired_at"] = v.expired_at
        elif newer is not None and newer.revision == v.revision + 1 and window is not None:
            row["expires_at"] = expires_at(newer.committed, window)
        rows.append(row)
    return {"file_id": file_id, "revisions": rows}

