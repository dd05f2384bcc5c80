"""What a server answer means for the person running the client: the
`ApiError` family, one class per thing they can do something about (the
server is down, the login was refused, the quota is full, the home region
is down, ...), and `json_or_raise`, which maps an HTTP answer onto it.
`api.py` re-exports every class; callers catch them from there.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import SealsyncClientError

if TYPE_CHECKING:
    import requests

Body = dict[str, Any]


class ApiError(SealsyncClientError):
    """The server answered with an error; the message is the server's own."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ServerUnreachable(ApiError):
    """The Sealsync server could not be reached (down, wrong URL, no network)."""


class AuthError(ApiError):
    """The server refused this account or device (wrong passphrase, revoked device)."""


class ServerForgot(ApiError):
    """The server has lost or rolled back what this device synced with it.

    Either it no longer knows the account at all, or its change feed ends
    before entries this device has already verified. Neither means the files
    were deleted: nothing is applied here, and `sealsync init --reseed DIR`
    uploads the folder again to a new account."""

    def __init__(self, what: str, status: int = 0) -> None:
        super().__init__(f"{what}: the server lost or rolled back its data (this is not a "
                         "remote delete: nothing was changed here)", status, "server_forgot")
        self.folder: str | None = None  # set by whoever knows which folder it was

    def advice(self) -> str:
        """The message, and what to do about it."""
        return (f"{self}. To upload this folder again to a new account, run: "
                f"sealsync init --reseed {self.folder or 'DIR'}")


class QuotaError(ApiError):
    """The upload is too large, or the account's quota is used up."""


class OverQuota(QuotaError):
    """The account's storage quota is used up (413 over_quota): the server
    refuses uploads, nothing is deleted, downloads and deletes still work.
    A pass keeps the local files and reports them once (exit 6)."""


class NotFound(ApiError):
    """No such account, file, revision or upload."""


class Expired(ApiError):
    """410 expired: the revision was superseded or deleted longer ago than
    the server's retention window, and its content is gone. `body` still
    names its signed manifest, so the history verifies (download.py)."""

    def __init__(self, message: str, status: int, code: str, body: Body) -> None:
        super().__init__(message, status, code)
        self.body = body


class RateLimited(ApiError):
    """The server's abuse limit: too many sign-ups, enrolments or logins."""

    def __init__(self, message: str, status: int = 429, code: str = "",
                 retry_after_s: int = 0) -> None:
        super().__init__(message, status, code)
        self.retry_after_s = retry_after_s


class PaymentRequired(ApiError):
    """The account is read-only until its invoice is paid: nothing is lost."""


class HomeUnavailable(ApiError):
    """The account's home region is down: files can be read (from a replica)
    but not changed until it is back; local changes wait, nothing is lost."""


def json_or_raise(r: requests.Response) -> Body:
    """The answer's JSON object, or the ApiError its status and code mean."""
    try:
        body = r.json()
    except ValueError:
        body = None
    if 200 <= r.status_code < 300 and isinstance(body, dict):
        return body
    message = body.get("message") if isinstance(body, dict) else None
    code = body.get("error", "") if isinstance(body, dict) else ""
    status = r.status_code
    text = message or f"HTTP {status} from the server"
    if 200 <= status < 300:
        raise ApiError(f"the server sent a malformed answer (HTTP {status})", status)
    if status in (401, 403):
        raise AuthError(f"the server refused this device: {text}", status, code)
    if status == 413 and code == "over_quota":
        raise OverQuota(text, status, code)
    if status == 413:
        raise QuotaError(f"too large or over quota: {text}", status, code)
    if status == 404:
        raise NotFound(text, status, code)
    if status == 410 and code == "expired" and isinstance(body, dict):
        raise Expired(text, status, code, body)
    if status == 429:
        wait = r.headers.get("Retry-After", "")
        seconds = int(wait) if wait.isdigit() and len(wait) < 10 else 0
        raise RateLimited(f"the server is limiting requests from this device or address; "
                          f"try again in {seconds or 'a few'} s ({text})", status, code,
                          seconds)
    if status == 402:
        raise PaymentRequired(f"{text} (nothing was uploaded; your files stay as they are "
                              "and sync resumes once the invoice is paid)", status, code)
    if status == 503 and code == "read_only":
        raise HomeUnavailable(text, status, code)
    if status >= 500:
        raise ApiError(f"the server failed (HTTP {status}): {text}; try again later",
                       status, code)
    raise ApiError(text, status, code)
