"""Bearer tokens and secret verifiers. Pure: time and keys are parameters.

A token is `v1.<payload>.<mac>`, base64url, HMAC-SHA256 over the first two
parts. Any failure raises the same `Unauthorized` so an attacker learns
nothing from the error (the Fernet habit). Parsing is strict: unpadded
canonical base64url only (a lenient decoder would let one MAC be spelled
several ways), a 32-byte MAC, and exactly the claims `issue` writes, with
ids of 32 lowercase hex and an integer expiry.

The server never stores the client's auth secret, only a salted SHA-256 of
it. The secret is 256 bits derived by the client (Argon2id, its own purpose
tag), so a fast hash is enough: there is nothing to brute-force, and nothing
the server holds can derive the client's content keys.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass

from .errors import BadRequest, Unauthorized

VERSION = "v1"
MAX_TOKEN_LEN = 512
_AUTH_KEY = re.compile(r"[0-9a-f]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"[0-9a-f]{32}")
MAC_LEN = 32


@dataclass(frozen=True)
class Claims:
    user_id: str
    device_id: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """Strict: only the unpadded canonical encoding of some bytes decodes."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:  # nonzero padding bits: another spelling of `data`
        raise ValueError("not the canonical encoding")
    return data


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode(), hashlib.sha256).digest()


def issue(key: bytes, user_id: str, device_id: str, now: int, ttl_s: int) -> str:
    """Return a signed token for (user, device) valid for `ttl_s` seconds."""
    body = json.dumps({"u": user_id, "d": device_id, "e": now + ttl_s},
                      separators=(",", ":")).encode()
    signed = f"{VERSION}.{_b64(body)}"
    return f"{signed}.{_b64(_mac(key, signed))}"


def verify(key: bytes, token: str, now: int) -> Claims:
    """Return the token's claims, or raise Unauthorized (bad, forged, expired)."""
    fail = Unauthorized("missing, malformed, forged or expired bearer token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LEN:
        raise fail
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise fail
    try:
        mac = _unb64(parts[2])
        if len(mac) != MAC_LEN or not hmac.compare_digest(
                mac, _mac(key, f"{parts[0]}.{parts[1]}")):
            raise fail
        body = json.loads(_unb64(parts[1]))
        claims = _claims(body)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise fail from exc
    if claims.expires_at <= now:
        raise fail
    return claims


def _claims(body: object) -> Claims:
    """Exactly what `issue` writes, or ValueError."""
    if not isinstance(body, dict) or set(body) != {"u", "d", "e"}:
        raise ValueError("unexpected claims")
    user, device, expires = body["u"], body["d"], body["e"]
    if not (isinstance(user, str) and _ID.fullmatch(user) and isinstance(device, str)
            and _ID.fullmatch(device) and type(expires) is int):
        raise ValueError("malformed claims")
    return Claims(user, device, expires)


def check_auth_key(value: object) -> bytes:
    """The client's derived auth secret: 32 bytes as 64 lowercase hex."""

    if not isinstance(value, str) or not _AUTH_KEY.fullmatch(value):
        raise BadRequest("auth_key must be 64 lowercase hex digits (32 bytes)")
    return bytes.fromhex(value)


def verifier(salt: bytes, auth_key: bytes) -> bytes:
    return hashlib.sha256(b"sealsync-auth-v1" + salt + auth_key).digest()


def matches(salt: bytes, auth_key: bytes, stored: bytes) -> bool:
    return hmac.compare_digest(verifier(salt, auth_key), stored)
