"""The ids the server speaks, checked and turned into bytes for associated data.

Mirrors the server's contract (lowercase hex of a fixed length) without
importing it: the client never imports server code.
"""
from __future__ import annotations

import re
import secrets
from typing import Final

ID_HEX: Final = 32  # user, device, file and upload ids: 128 bits
CHUNK_HEX: Final = 64  # chunk ids: 256 bits

_ID = re.compile(f"[0-9a-f]{{{ID_HEX}}}")
_CHUNK = re.compile(f"[0-9a-f]{{{CHUNK_HEX}}}")


def new_file_id() -> str:
    """A fresh random 128-bit file id (names never appear in ids)."""
    return secrets.token_hex(ID_HEX // 2)


def _id_bytes(value: str, what: str) -> bytes:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError(f"{what} must be {ID_HEX} lowercase hex digits")
    return bytes.fromhex(value)


def user_id_bytes(user_id: str) -> bytes:
    return _id_bytes(user_id, "user id")


def file_id_bytes(file_id: str) -> bytes:
    return _id_bytes(file_id, "file id")


def chunk_id_bytes(chunk_id: str) -> bytes:
    if not isinstance(chunk_id, str) or not _CHUNK.fullmatch(chunk_id):
        raise ValueError(f"chunk id must be {CHUNK_HEX} lowercase hex digits")
    return bytes.fromhex(chunk_id)
