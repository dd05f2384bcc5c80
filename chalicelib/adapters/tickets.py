"""One-time WebSocket connect tickets in Redis (docs/PUSH.md).

A browser cannot set headers on a WebSocket, so it connects with
`?ticket=...`: 32 random bytes, good for one connection within a minute.
Unlike a bearer token in the query string, a ticket that an access log
keeps is spent already. Redis holds only a hash of it, so a Redis dump
cannot connect either; GETDEL makes redemption atomic (single use even
when two connects race).
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

TICKET_TTL_S = 60


def _key(ticket: str) -> str:
    return "wst:" + hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).hexdigest()


class Tickets:
    def __init__(self, client: Any, ttl_s: int = TICKET_TTL_S) -> None:
        self.redis = client
        self.ttl_s = ttl_s

    def issue(self, user_id: str, device_id: str) -> str:
        ticket = secrets.token_urlsafe(32)
        self.redis.set(_key(ticket), f"{user_id}:{device_id}", ex=self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> tuple[str, str] | None:
        """(user, device) the ticket was issued to, once; None if unknown,
        expired or spent."""
        if not ticket or len(ticket) > 128:
            return None
        raw = self.redis.getdel(_key(ticket))
        if raw is None:
            return None
        user, _, device = raw.decode().partition(":")
        return user, device
