"""One root error for the server; each class carries its HTTP status.

Messages are written for the client developer who will read them, and never
include data the server should not echo (tokens, secrets).
"""
from __future__ import annotations

from typing import Any


class SealsyncError(Exception):
    """Something the client can fix or should retry."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}

    def headers(self) -> dict[str, str | list[str]]:
        """Extra response headers (Retry-After on a 429)."""
        return {}


class BadRequest(SealsyncError):
    """The request is malformed or out of bounds."""


class Unauthorized(SealsyncError):
    status = 401
    code = "unauthorized"


class Forbidden(SealsyncError):
    status = 403
    code = "forbidden"


class NotFound(SealsyncError):
    status = 404
    code = "not_found"


class Expired(SealsyncError):
    """The revision expired: superseded or deleted longer ago than the
    retention window, its content is gone. The body still names its signed
    manifest (`manifest_url`), so a device can verify the file's history."""

    status = 410
    code = "expired"

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details

    def to_body(self) -> dict[str, Any]:
        return {**super().to_body(), **self.details}


class Conflict(SealsyncError):
    status = 409
    code = "conflict"


class TooLarge(SealsyncError):
    status = 413
    code = "too_large"


class TooManyRequests(SealsyncError):
    """An abuse limit (core/ratelimit.py): retry after `retry_after_s` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str | list[str]]:
        return {"Retry-After": str(self.retry_after_s)}


class Unavailable(SealsyncError):
    """A dependency (Redis, the store) is down; the caller should retry."""

    status = 503
    code = "unavailable"


class PaymentRequired(SealsyncError):
    """The account is read-only: an invoice stayed unpaid past the grace
    period. Reads keep working and nothing is deleted; paying restores writes."""

    status = 402
    code = "payment_required"


class WrongRegion(SealsyncError):
    """The account lives in another region: send this request, and every
    later one, to `home` (docs/ACCOUNT.md, "Regions"). 421 Misdirected
    Request rather than a 3xx: HTTP libraries follow a 307 on their own,
    dropping the Authorization header when the host changes and re-sending
    a large body, and the client must learn the new URL to keep it."""

    status = 421
    code = "wrong_region"

    def __init__(self, region: str, url: str) -> None:
        super().__init__(f"this account lives in region {region}: use {url}")
        self.region = region
        self.url = url

    def to_body(self) -> dict[str, Any]:
        return {**super().to_body(), "region": self.region, "home": self.url}


class HomeDown(SealsyncError):
    """The account's home region is down: reads are served from a replica,
    writes wait until the home is back (nothing is lost; the client keeps
    its changes and sends them then)."""

    status = 503
    code = "read_only"

    def __init__(self, home: str) -> None:
        super().__init__(f"your home region {home} is unavailable: files can be read but "
                         "not changed until it is back (your local changes are kept)")

    def headers(self) -> dict[str, str | list[str]]:
        return {"Retry-After": "300"}
