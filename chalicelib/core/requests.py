"""Parsing and bounding of client requests. Pure: returns dataclasses or
raises BadRequest/TooLarge with a message the client developer can act on.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest, TooLarge
from .ids import check_chunk_id, check_id

_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Limits:
    """Size bounds on everything a client can send (all configurable)."""

    max_body_bytes: int = 512 * 1024
    max_manifest_bytes: int = 4 * 1024 * 1024
    max_chunk_bytes: int = 16 * 1024 * 1024
    max_chunks: int = 4096
    max_wait_s: int = 20
    max_page: int = 1000
    max_kdf_bytes: int = 1024
    # Batches (POST /v1/batches, docs/DESIGN.md "Batches")
    max_batch_entries: int = 1000
    max_batch_body_bytes: int = 2 * 1024 * 1024
    max_batch_chunks: int = 8192  # chunk references in all entries together
    max_bundle_bytes: int = 64 * 1024 * 1024  # Σ manifest_size
    # Packs (docs/DESIGN.md "Packs"): 256 packs of 8 MiB carry 2 GiB of chunks
    max_batch_packs: int = 256
    max_pack_bytes: int = 64 * 1024 * 1024  # FORMAT.md section 12's reader cap
    max_pack_blobs: int = 4096


@dataclass(frozen=True)
class UploadRequest:
    file_id: str
    base_revision: int
    manifest_size: int
    chunk_ids: tuple[str, ...]
    chunk_sizes: tuple[int, ...]


def parse_json(raw: bytes | str | None, limits: Limits) -> dict[str, Any]:
    """Decode a JSON object body, bounded in size."""
    if raw is None or raw == b"":
        raise BadRequest("a JSON object body is required")
    if len(raw) > limits.max_body_bytes:
        raise TooLarge(f"request body over {limits.max_body_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # `[[[[...` fits well inside the size bound
        raise BadRequest("body is not valid JSON: nested too deeply") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def int_in(value: object, what: str, low: int, high: int) -> int:
    """An int (not a bool, not a float) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be an integer")
    if not low <= value <= high:
        raise BadRequest(f"{what} must be between {low} and {high}")
    return value


def query_int(params: dict[str, str] | None, name: str, default: int,
              low: int, high: int) -> int:
    """An integer query parameter, clamped to nothing: out of range is a 400."""
    raw = (params or {}).get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:  # int('²') fails
        raise BadRequest(f"query parameter {name} must be a non-negative integer")
    return int_in(int(raw), name, low, high)


def parse_upload(body: dict[str, Any], limits: Limits) -> UploadRequest:
    """Validate POST /v1/uploads."""
    file_id = check_id(body.get("file_id"), "file_id")
    base = int_in(body.get("base_revision"), "base_revision", 0, 2**53)
    size = int_in(body.get("manifest_size"), "manifest_size", 1,
                  limits.max_manifest_bytes)
    chunks = body.get("chunks", [])
    if not isinstance(chunks, list):
        raise BadRequest("chunks must be a list of {id, size}")
    if len(chunks) > limits.max_chunks:
        raise TooLarge(f"a version may reference at most {limits.max_chunks} chunks")
    ids: list[str] = []
    sizes: list[int] = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            raise BadRequest("each chunk must be an object {id, size}")
        ids.append(check_chunk_id(chunk.get("id")))
        sizes.append(int_in(chunk.get("size"), "chunk size", 1, limits.max_chunk_bytes))
    only_fields(body, {"file_id", "base_revision", "manifest_size", "chunks"})
    return UploadRequest(file_id, base, size, tuple(ids), tuple(sizes))


def sha256_field(value: object, what: str) -> bytes | None:
    """An optional SHA-256 digest the client declares for a staging object
    (64 lowercase hex digits): the server signs it into the PUT URL."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 64 or not _HEX64.fullmatch(value):
        raise BadRequest(f"{what} must be a SHA-256 digest as 64 lowercase hex digits")
    return bytes.fromhex(value)


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuse fields we do not know: a typo must not be silently ignored."""
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
