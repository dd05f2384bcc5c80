"""A small HTTP client for the Sealsync server (chalicelib/openapi.json).

One `requests.Session` is reused for every call, API and presigned blob
URLs alike. Errors are `ApiError` subclasses whose messages are written for
the person running the client: the server being down, a rejected login and
a full quota each read differently. A 401 on an authenticated call gets the
token refreshed once with the device's auth key, then the call is retried.

`requests` (with urllib3 and the TLS stack, about 16 MB) is imported when the
first `Api` is built, which `open_folder` does after Argon2id has run and
freed its memory: the two never add up in the client's peak.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SealsyncClientError

if TYPE_CHECKING:
    import requests

TIMEOUT_S = 30.0
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


class QuotaError(ApiError):
    """The upload is too large, or the account's quota is used up."""


class NotFound(ApiError):
    """No such account, file, revision or upload."""


class PaymentRequired(ApiError):
    """The account is read-only until its invoice is paid: nothing is lost."""


@dataclass(frozen=True)
class Login:
    """What a device needs to get tokens: never the master key, only auth_key."""

    user_id: str
    device_id: str
    auth_key: str


POOL_SIZE = 32


class Api:
    def __init__(self, base_url: str, login: Login | None = None, token: str | None = None,
                 on_token: Callable[[str, int], None] | None = None,
                 session: requests.Session | None = None,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.base_url = base_url.rstrip("/")
        self.login = login
        self.token = token
        self.on_token = on_token  # persists a refreshed token (e.g. in state.db)
        if session is None:
            import requests
            session = requests.Session()
            # Enough pooled connections for every file in flight plus its
            # chunk PUTs (requests keeps 10 and drops the rest after use).
            for scheme in ("http://", "https://"):
                session.mount(scheme, requests.adapters.HTTPAdapter(pool_maxsize=POOL_SIZE))
        self.http = session
        self.timeout_s = timeout_s

    # -- plumbing ---------------------------------------------------------
    def _send(self, method: str, url: str, timeout_s: float, **kw: Any) -> requests.Response:
        import requests  # already loaded by __init__: a dict lookup
        try:
            return self.http.request(method, url, timeout=timeout_s, **kw)
        except requests.ConnectionError as exc:
            raise ServerUnreachable(f"cannot reach the Sealsync server at {self.base_url} "
                                    f"(is it running?)") from exc
        except requests.Timeout as exc:
            raise ServerUnreachable(f"the Sealsync server at {self.base_url} did not answer "
                                    f"in {timeout_s:.0f}s") from exc

    def call(self, method: str, path: str, body: Body | None = None, *, auth: bool = True,
             wait_s: int = 0) -> Body:
        """One API call; refreshes the token once on a 401."""
        for attempt in (0, 1):
            headers = {"content-type": "application/json"}
            if auth:
                if self.token is None:
                    self.refresh_token()
                headers["authorization"] = f"Bearer {self.token}"
            r = self._send(method, self.base_url + path, self.timeout_s + wait_s,
                           headers=headers, data=None if body is None else json.dumps(body))
            if r.status_code == 401 and auth and attempt == 0 and self.login is not None:
                self.refresh_token()
                continue
            return _json_or_raise(r)
        raise AssertionError("unreachable")

    def refresh_token(self) -> None:
        if self.login is None:
            raise AuthError("this device has no credentials: run `sealsync init` first")
        b = self.call("POST", "/v1/tokens", {"user_id": self.login.user_id,
                                             "device_id": self.login.device_id,
                                             "auth_key": self.login.auth_key}, auth=False)
        self.token = b["token"]
        if self.on_token is not None:
            self.on_token(b["token"], int(b["expires_at"]))

    def put_blob(self, url: str, blob: bytes | memoryview,
                 headers: dict[str, str] | None = None) -> None:
        """PUT to a presigned URL; 412 (a create-only chunk that exists) is success."""
        r = self._send("PUT", url, self.timeout_s, data=blob, headers=headers or {})
        if r.status_code not in (200, 201, 204, 412):
            raise ApiError(f"storage refused an upload (HTTP {r.status_code})", r.status_code)

    def get_blob(self, url: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """GET a presigned URL; `byte_range` (offset, length) sends the Range
        header a ranged URL was signed with."""
        headers = {} if byte_range is None else {
            "Range": f"bytes={byte_range[0]}-{byte_range[0] + byte_range[1] - 1}"}
        r = self._send("GET", url, self.timeout_s, headers=headers)
        if r.status_code not in (200, 206) or (byte_range and len(r.content) != byte_range[1]):
            raise ApiError(f"storage refused a download (HTTP {r.status_code})", r.status_code)
        return r.content

    # -- accounts and devices ----------------------------------------------
    def create_account(self, auth_key: str, kdf: str, email: str | None = None) -> str:
        """A new account; `email` (optional) is where account mail goes."""
        body = {"auth_key": auth_key, "kdf": kdf, **({"email": email} if email else {})}
        return str(self.call("POST", "/v1/accounts", body, auth=False)["user_id"])

    def account_kdf(self, user_id: str) -> str:
        return str(self.call("GET", f"/v1/accounts/{user_id}/kdf", auth=False)["kdf"])

    def add_device(self, user_id: str, auth_key: str) -> Body:
        """Register a device; remembers its login and token."""
        b = self.call("POST", "/v1/devices", {"user_id": user_id, "auth_key": auth_key},
                      auth=False)
        self.login = Login(user_id, b["device_id"], auth_key)
        self.token = b["token"]
        if self.on_token is not None:
            self.on_token(b["token"], int(b["expires_at"]))
        return b

    # -- sync ---------------------------------------------------------------
    def create_upload(self, file_id: str, base: int, manifest_size: int,
                      chunks: list[tuple[str, int]]) -> Body:
        return self.call("POST", "/v1/uploads", {
            "file_id": file_id, "base_revision": base, "manifest_size": manifest_size,
            "chunks": [{"id": cid, "size": size} for cid, size in chunks]})

    def upload_status(self, upload_id: str, wait_s: int = 0) -> Body:
        return self.call("GET", f"/v1/uploads/{upload_id}?wait={wait_s}", wait_s=wait_s)

    def wait_upload(self, upload_id: str, rounds: int = 15, wait_s: int = 20) -> Body:
        """Long-poll until the upload is decided (accepted, conflict or rejected)."""
        for _ in range(rounds):
            b = self.upload_status(upload_id, wait_s)
            if b["status"] != "pending":
                return b
        raise ApiError(f"upload {upload_id} is still pending after {rounds * wait_s}s; "
                       "it will be retried on the next sync")

    def create_batch(self, entries: list[Body]) -> Body:
        return self.call("POST", "/v1/batches", {"entries": entries})

    def batch_status(self, batch_id: str, wait_s: int = 0) -> Body:
        return self.call("GET", f"/v1/batches/{batch_id}?wait={wait_s}", wait_s=wait_s)

    def wait_batch(self, batch_id: str, rounds: int = 15, wait_s: int = 20) -> Body:
        """Long-poll until every entry of the batch is decided."""
        for _ in range(rounds):
            b = self.batch_status(batch_id, wait_s)
            if b["status"] != "pending":
                return b
        raise ApiError(f"batch {batch_id} is still pending after {rounds * wait_s}s; "
                       "it will be retried on the next sync")

    def delete_file(self, file_id: str, base: int) -> str:
        return str(self.call("DELETE", f"/v1/files/{file_id}?base_revision={base}")["upload_id"])

    def changes(self, cursor: int, limit: int = 100, wait_s: int = 0) -> Body:
        return self.call("GET", f"/v1/changes?cursor={cursor}&limit={limit}&wait={wait_s}",
                         wait_s=wait_s)

    def get_file(self, file_id: str, revision: int | None = None) -> Body:
        query = "" if revision is None else f"?revision={revision}"
        return self.call("GET", f"/v1/files/{file_id}{query}")

    def revisions(self, file_id: str) -> list[Body]:
        return list(self.call("GET", f"/v1/files/{file_id}/revisions")["revisions"])


    def usage(self, start: int | None = None, end: int | None = None) -> Body:
        """GET /v1/account/usage: this month, or [start, end) in epoch seconds."""
        query = "&".join(f"{k}={v}" for k, v in (("from", start), ("to", end)) if v is not None)
        return self.call("GET", "/v1/account/usage" + (f"?{query}" if query else ""))


def _json_or_raise(r: requests.Response) -> Body:
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
    if status == 413:
        raise QuotaError(f"too large or over quota: {text}", status, code)
    if status == 404:
        raise NotFound(text, status, code)
    if status == 402:
        raise PaymentRequired(f"{text} (nothing was uploaded; your files stay as they are "
                              "and sync resumes once the invoice is paid)", status, code)
    if status >= 500:
        raise ApiError(f"the server failed (HTTP {status}): {text}; try again later",
                       status, code)
    raise ApiError(text, status, code)
