"""What the pairing routes do (docs/SECURITY.md, "Pairing"), as plain
functions like api.py's: the enrolled device opens a mailbox and later
leaves a sealed box; the new device, knowing only the code, joins it.

Every message is base64 of at most MAX_MSG bytes; a mailbox is one user's
(its owner's routes check the token's user) and lives 5 minutes.
"""
from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from .config import Runtime
from .core.errors import BadRequest, Conflict, NotFound
from .core.requests import only_fields
from .core.tokens import Claims

MAX_MSG = 4096
_PAIRING_ID = re.compile(r"[23456789ABCDEFGHJKMNPQRSTVWXYZ]{8}")
Body = dict[str, Any]


def _bytes(body: Body, field: str) -> bytes:
    value = body.get(field)
    if not isinstance(value, str) or len(value) > MAX_MSG * 2:
        raise BadRequest(f"{field} must be base64 of at most {MAX_MSG} bytes")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{field} must be base64 of at most {MAX_MSG} bytes") from None
    if not data or len(data) > MAX_MSG:
        raise BadRequest(f"{field} must be base64 of at most {MAX_MSG} bytes")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pairing_id(value: str) -> str:
    if not isinstance(value, str) or not _PAIRING_ID.fullmatch(value):
        raise BadRequest("a pairing id is 8 characters of 2-9 and A-Z (no I, L, O, U)")
    return value


def _mailbox(rt: Runtime, pairing_id: str) -> dict[str, bytes]:
    found = rt.pairings.get(_pairing_id(pairing_id))
    if found is None:
        raise NotFound("no such pairing (codes expire after 5 minutes)")
    return found


def create(rt: Runtime, who: Claims, body: Body) -> Body:
    only_fields(body, {"msg"})
    msg = _bytes(body, "msg")
    pairing_id = rt.pairings.create(who.user_id, who.device_id, msg)
    return {"pairing_id": pairing_id, "expires_at": int(time.time()) + rt.pairings.ttl_s}


def _owned(rt: Runtime, who: Claims, pairing_id: str) -> dict[str, bytes]:
    box = _mailbox(rt, pairing_id)
    if box.get("user", b"").decode() != who.user_id:
        raise NotFound("no such pairing (codes expire after 5 minutes)")
    return box


def status(rt: Runtime, who: Claims, pairing_id: str) -> Body:
    """The enrolled device's poll: the new device's message, once it came."""
    box = _owned(rt, who, pairing_id)
    return {"pairing_id": pairing_id, "msg": _b64(box["b"]) if "b" in box else None}


def put_box(rt: Runtime, who: Claims, pairing_id: str, body: Body) -> Body:
    only_fields(body, {"box"})
    data = _bytes(body, "box")
    box = _owned(rt, who, pairing_id)
    if "b" not in box:
        raise Conflict("no device has joined this pairing yet")
    if "box" in box:
        raise Conflict("this pairing already has its box")
    rt.pairings.put_box(pairing_id, data)
    return {"pairing_id": pairing_id}


def join(rt: Runtime, pairing_id: str, body: Body) -> Body:
    """The new device's first step (public: it has no token yet). One
    join per mailbox: a second, an attacker's guess or a retry, is a 409."""
    only_fields(body, {"msg"})
    msg = _bytes(body, "msg")
    box = _mailbox(rt, pairing_id)
    if not rt.pairings.join(pairing_id, msg):
        raise Conflict("this pairing code was already used: make a new one")
    return {"pairing_id": pairing_id, "user_id": box["user"].decode(), "msg": _b64(box["a"])}


def take_box(rt: Runtime, pairing_id: str) -> Body:
    """The new device's poll: the sealed box, handed over once."""
    _mailbox(rt, pairing_id)
    box = rt.pairings.take_box(pairing_id)
    return {"pairing_id": pairing_id, "box": _b64(box) if box is not None else None}
