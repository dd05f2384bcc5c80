"""Pairing mailboxes in Redis: a short-lived relay between an enrolled
device and a new one (docs/SECURITY.md, "Pairing").

  pair:{pairing id}  hash {user, device, a, b, box}   TTL 5 min

The server only relays: two SPAKE2 messages (`a` from the enrolled device,
`b` from the new one) and one box sealed under the key they agree on. It
never sees the code's password, cannot derive the key from the messages,
and gets one guess per mailbox: the first `b` written (HSETNX) burns it.
"""
from __future__ import annotations

import secrets
from typing import Any

PAIRING_TTL_S = 300
ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: read aloud and typed
ID_LEN = 8  # ~39 bits: a mailbox id is not guessable in its 5 minutes


def new_pairing_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LEN))


class Pairings:
    def __init__(self, client: Any, ttl_s: int = PAIRING_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    @staticmethod
    def _key(pairing_id: str) -> str:
        return f"pair:{pairing_id}"

    def create(self, user_id: str, device_id: str, msg_a: bytes) -> str:
        pairing_id = new_pairing_id()
        key = self._key(pairing_id)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"user": user_id, "device": device_id, "a": msg_a})
        pipe.expire(key, self.ttl_s)
        pipe.execute()
        return pairing_id

    def get(self, pairing_id: str) -> dict[str, bytes] | None:
        got = self.redis.hgetall(self._key(pairing_id))
        return {k.decode(): v for k, v in got.items()} or None

    def join(self, pairing_id: str, msg_b: bytes) -> bool:
        """Record the new device's message; False if one was already
        recorded (the mailbox is spent: one guess per mailbox)."""
        return bool(self.redis.hsetnx(self._key(pairing_id), "b", msg_b))

    def put_box(self, pairing_id: str, box: bytes) -> None:
        self.redis.hset(self._key(pairing_id), "box", box)

    def take_box(self, pairing_id: str) -> bytes | None:
        """The box, once: the mailbox is deleted when it is handed over."""
        key = self._key(pairing_id)
        box = self.redis.hget(key, "box")
        if box is not None:
            self.redis.delete(key)
        return bytes(box) if box is not None else None
