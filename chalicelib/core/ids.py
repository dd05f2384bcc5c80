"""Ids, object keys and their validation.

Every id is lowercase hex of a fixed length, so an id can never carry a path
separator, a name or anything else a client might smuggle into a key
(invariant 7: a user's keys always live under their own prefix).
"""
from __future__ import annotations

import re
import secrets
from typing import Final

from .errors import BadRequest

ID_HEX: Final = 32  # 128-bit user, device, file and upload ids
CHUNK_HEX: Final = 64  # 256-bit keyed hash of the plaintext chunk

_ID = re.compile(f"[0-9a-f]{{{ID_HEX}}}")
_CHUNK = re.compile(f"[0-9a-f]{{{CHUNK_HEX}}}")

STAGING: Final = "staging/"
CHUNKS: Final = "chunks/"
MANIFESTS: Final = "manifests/"


def new_id() -> str:
    """A fresh random 128-bit id (users, devices, uploads)."""
    return secrets.token_hex(ID_HEX // 2)


def check_id(value: object, what: str) -> str:
    """Return `value` if it is a 32-hex-digit id, else raise BadRequest."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise BadRequest(f"{what} must be {ID_HEX} lowercase hex digits")
    return value


def check_chunk_id(value: object) -> str:
    if not isinstance(value, str) or not _CHUNK.fullmatch(value):
        raise BadRequest(f"chunk id must be {CHUNK_HEX} lowercase hex digits")
    return value


def staging_key(user_id: str, upload_id: str) -> str:
    return f"{STAGING}{user_id}/{upload_id}"


def chunk_key(user_id: str, chunk_id: str) -> str:
    return f"{CHUNKS}{user_id}/{chunk_id}"


def manifest_key(user_id: str, file_id: str, upload_id: str) -> str:
    """Where a manifest lives once committed; keyed by upload so a retry
    of the same upload writes the same object (idempotent move)."""
    return f"{MANIFESTS}{user_id}/{file_id}/{upload_id}"


def bundle_key(user_id: str, batch_id: str) -> str:
    """Where a batch's bundle lives once committed (every revision it
    commits points at a range of it). `batch` is no file id: no collision."""
    return f"{MANIFESTS}{user_id}/batch/{batch_id}"


def parse_staging_key(key: str) -> tuple[str, str]:
    """Split `staging/{user}/{upload}` into (user, upload) or raise.

    Anything else (another prefix, extra path segments, a bad id) is refused:
    the event may be forged or the bucket misconfigured.
    """
    if not key.startswith(STAGING):
        raise BadRequest("object key is not under staging/")
    parts = key[len(STAGING):].split("/")
    if len(parts) != 2:
        raise BadRequest("staging key must be staging/{user_id}/{upload_id}")
    return check_id(parts[0], "user id"), check_id(parts[1], "upload id")
