"""A small HTTP client for the Sealsync server (chalicelib/openapi.json).

One `requests.Session` is reused for every call, API and presigned blob
URLs alike. Errors are `ApiError` subclasses (`api_errors.py`) whose messages are written for
the person running the client: the server being down, a rejected login and
a full quota each read differently. A 401 on an authenticated call gets the
token refreshed once with the device's auth key, then the call is retried.

`requests` (with urllib3 and the TLS stack, about 16 MB) is imported when the
first `Api` is built, which `open_folder` does after Argon2id has run and
freed its memory: the two never add up in the client's peak.
"""
from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import urlsplit

from .api_errors import (  # re-exported: callers import them from here
    ApiError,
    AuthError,
    Expired,
    HomeUnavailable,
    NotFound,
    OverQuota,
    PaymentRequired,
    QuotaError,
    RateLimited,
    ServerForgot,
    ServerUnreachable,
    json_or_raise,
)
from .errors import UsageError

if TYPE_CHECKING:
    import requests

    from .bwlimit import Limiter

TIMEOUT_S = 30.0
Body = dict[str, Any]

__all__ = ["ApiError", "Api", "AuthError", "Body", "Expired", "HomeUnavailable", "Login",
           "NotFound", "OverQuota", "PaymentRequired", "QuotaError", "RateLimited", "ServerForgot",
           "ServerUnreachable", "check_server_url", "say_on_stderr"]


LOCAL_HOSTS = frozenset({"localhost"})


def check_server_url(url: str) -> str:
    """The server's base URL, refused unless it is https:// or plain http://
    to this machine (localhost, 127.0.0.0/8, ::1): auth_key and tokens
    must never cross a network in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        raise UsageError(f"not a server URL: {url!r}") from None
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and host:
        try:
            local = host in LOCAL_HOSTS or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if local:
            return url
        raise UsageError(f"refusing plain http:// to {host}: the auth key and tokens would "
                         "cross the network in clear; use https://")
    raise UsageError(f"the server URL must start with https:// (got {url!r})")


def say_on_stderr(message: str) -> None:
    print(f"sealsync: {message}", file=sys.stderr, flush=True)


# One read of a body read into a buffer. urllib3's readinto allocates a
# temporary of the size asked (http.client two): kept small, they come
# and go from the thread's heap instead of fragmenting it.
READ_BLOCK = 64 * 1024
MAX_WAIT_S = 60  # longer waits than this are reported instead of slept through
RATE_RETRIES = 3


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
                 timeout_s: float = TIMEOUT_S,
                 on_wait: Callable[[str], None] = say_on_stderr,
                 origin_url: str | None = None,
                 on_home: Callable[[str], None] | None = None) -> None:
        self.base_url = check_server_url(base_url).rstrip("/")
        # Home regions (docs/ACCOUNT.md): `base_url` is the account's home
        # once a server answered 421 with it; `origin_url` the server the
        # folder was made with, tried again when the home cannot be reached
        # (its region may serve reads from a replica while the home is down).
        self.origin_url = check_server_url(origin_url or base_url).rstrip("/")
        self.on_home = on_home  # persists a learnt home URL (state.db)
        self.on_wait = on_wait  # told when a 429 makes us wait
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
        self.limiter: Limiter | None = None  # --bwlimit: every blob PUT and GET draws from it

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
        """One API call; waits out a short 429 (saying so) and retries."""
        for attempt in range(RATE_RETRIES + 1):
            try:
                return self._call(method, path, body, auth, wait_s)
            except RateLimited as exc:
                if attempt == RATE_RETRIES or not 0 < exc.retry_after_s <= MAX_WAIT_S:
                    raise
                self.on_wait(f"the server asks this device to slow down; retrying in "
                             f"{exc.retry_after_s} s")
                time.sleep(exc.retry_after_s)
        raise AssertionError("unreachable")

    def _call(self, method: str, path: str, body: Body | None, auth: bool,
              wait_s: int) -> Body:
        """One API call; refreshes the token once on a 401, follows a 421 to
        the account's home region once, and tries the origin server once
        when the home cannot be reached."""
        # compact: a version's chunk list is thousands of items (resync.py)
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        refreshed = moved = fell_back = False
        while True:
            headers = {"content-type": "application/json"}
            if auth:
                if self.token is None:
                    self.refresh_token()
                headers["authorization"] = f"Bearer {self.token}"
            try:
                r = self._send(method, self.base_url + path, self.timeout_s + wait_s,
                               headers=headers,
                               data=data)
            except ServerUnreachable:
                if fell_back or self.base_url == self.origin_url:
                    raise
                fell_back, self.base_url = True, self.origin_url  # for this session only
                continue
            if r.status_code == 401 and auth and not refreshed and self.login is not None:
                refreshed = True
                self.refresh_token()
                continue
            if r.status_code == 421 and not moved:
                moved = True
                self._go_home(r)
                continue
            return json_or_raise(r)

    def _go_home(self, r: requests.Response) -> None:
        """The server says the account lives elsewhere: use that URL from now
        on (and have it kept, so later runs go straight there)."""
        try:
            answer = r.json()
            home, region = str(answer["home"]), str(answer.get("region", "?"))
            self.base_url = check_server_url(home).rstrip("/")
        except (ValueError, KeyError, TypeError, UsageError):
            raise ApiError("the server sent this account to another region but gave no "
                           "usable address for it (HTTP 421)", 421, "wrong_region") from None
        self.on_wait(f"this account lives in region {region}; using {self.base_url} "
                     "from now on")
        if self.on_home is not None:
            self.on_home(self.base_url)

    def refresh_token(self) -> None:
        if self.login is None:
            raise AuthError("this device has no credentials: run `sealsync init` first")
        try:
            b = self.call("POST", "/v1/tokens", {"user_id": self.login.user_id,
                                                 "device_id": self.login.device_id,
                                                 "auth_key": self.login.auth_key}, auth=False)
        except AuthError:
            # The server answers "unknown account or wrong auth_key" alike; the
            # public KDF route tells a forgotten account from a refused device.
            try:
                self.account_kdf(self.login.user_id)
            except NotFound:
                raise ServerForgot(f"the server no longer knows account "
                                   f"{self.login.user_id}", 404) from None
            raise
        self.token = b["token"]
        if self.on_token is not None:
            self.on_token(b["token"], int(b["expires_at"]))

    def put_blob(self, url: str, blob: bytes | memoryview,
                 headers: dict[str, str] | None = None) -> None:
        """PUT to a presigned URL; 412 (a create-only chunk that exists) is success."""
        body: Any = blob
        if self.limiter is not None and self.limiter.up is not None:
            from .bwlimit import ThrottledBody
            body = ThrottledBody(blob, self.limiter.up)
        r = self._send("PUT", url, self.timeout_s, data=body, headers=headers or {})
        if r.status_code not in (200, 201, 204, 412):
            raise ApiError(f"storage refused an upload (HTTP {r.status_code})", r.status_code)

    @overload
    def get_blob(self, url: str, byte_range: tuple[int, int] | None = None) -> bytes: ...

    @overload
    def get_blob(self, url: str, byte_range: tuple[int, int], *,
                 into: bytearray) -> memoryview: ...

    def get_blob(self, url: str, byte_range: tuple[int, int] | None = None,
                 into: bytearray | None = None) -> bytes | memoryview:
        """GET a presigned URL; `byte_range` (offset, length) sends the Range
        header a ranged URL was signed with. With `into` (a buffer of at
        least the range's length) the body is read straight into it and
        the view of it returned: a download reuses a few range buffers
        instead of allocating 8 MiB per GET (packing.RangedFetch)."""
        headers = {} if byte_range is None else {
            "Range": f"bytes={byte_range[0]}-{byte_range[0] + byte_range[1] - 1}"}
        bucket = self.limiter.down if self.limiter is not None else None
        r = self._send("GET", url, self.timeout_s, headers=headers,
                       stream=bucket is not None or into is not None)
        if r.status_code not in (200, 206):
            r.close()
            raise ApiError(f"storage refused a download (HTTP {r.status_code})", r.status_code)
        if into is not None and byte_range is not None:
            return _read_into(r, memoryview(into)[:byte_range[1]], bucket)
        if bucket is None:
            data = r.content
        else:  # streamed in blocks, each paid for before it is read off the socket
            import requests
            blocks = []
            try:
                for block in r.iter_content(64 * 1024):
                    bucket.take(len(block))
                    blocks.append(block)
            except requests.RequestException as exc:
                raise ServerUnreachable("a download from storage broke off") from exc
            data = b"".join(blocks)
        if byte_range and len(data) != byte_range[1]:
            raise ApiError(f"storage refused a download (HTTP {r.status_code})", r.status_code)
        return data

    # -- accounts and devices ----------------------------------------------
    def create_account(self, auth_key: str, kdf: str, signing_key: str | None = None,
                       email: str | None = None, region: str | None = None) -> str:
        """A new account; `signing_key` is its public Ed25519 key (hex), which
        vouches for its devices (else the first enrolment registers it);
        `email` (optional) is where account mail goes; `region` (optional,
        one of the operator's) holds its data."""
        body = {"auth_key": auth_key, "kdf": kdf, **({"email": email} if email else {}),
                **({"region": region} if region else {})}
        if signing_key is not None:
            body["signing_key"] = signing_key
        return str(self.call("POST", "/v1/accounts", body, auth=False)["user_id"])

    def account_kdf(self, user_id: str) -> str:
        return str(self.call("GET", f"/v1/accounts/{user_id}/kdf", auth=False)["kdf"])

    def add_device(self, user_id: str, auth_key: str, enrolment: dict[str, str]) -> Body:
        """Register a device and its key (`devices.DeviceKey.enrolment`, plus
        its sealed `name`); remembers its login and token."""
        b = self.call("POST", "/v1/devices", {"user_id": user_id, "auth_key": auth_key,
                                              **enrolment}, auth=False)
        self.login = Login(user_id, b["device_id"], auth_key)
        self.token = b["token"]
        if self.on_token is not None:
            self.on_token(b["token"], int(b["expires_at"]))
        return b

    def devices(self) -> list[Body]:
        return list(self.call("GET", "/v1/devices")["devices"])

    def revoke_device(self, device_id: str, signature: str) -> Body:
        return self.call("DELETE", f"/v1/devices/{device_id}?signature={signature}")

    # -- sync ---------------------------------------------------------------
    def create_batch(self, entries: list[Body], packs: list[Body] | None = None,
                     bundle_sha256: str | None = None) -> Body:
        """POST /v1/batches; `bundle_sha256` (hex) binds the bundle's PUT URL
        to exactly those bytes (send the answer's `bundle_headers`)."""
        body: Body = {"entries": entries}
        if packs:
            body["packs"] = packs
        if bundle_sha256 is not None:
            body["bundle_sha256"] = bundle_sha256
        return self.call("POST", "/v1/batches", body)

    def missing_chunks(self, chunk_ids: list[str]) -> list[str]:
        """Those of `chunk_ids` the server has not stored (at most 8,192 ids)."""
        return [str(c) for c in self.call("POST", "/v1/chunks/missing",
                                          {"chunks": chunk_ids})["missing"]]

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


    def changes(self, cursor: int, limit: int = 100, wait_s: int = 0) -> Body:
        try:
            return self.call("GET", f"/v1/changes?cursor={cursor}&limit={limit}"
                             f"&wait={wait_s}", wait_s=wait_s)
        except ApiError as exc:
            if exc.status == 409:  # the only 409 of this route: our cursor is past its feed
                raise ServerForgot(f"the server's change feed is behind this device, which "
                                   f"has verified its first {cursor} entries", 409) from None
            raise

    def get_file(self, file_id: str, revision: int | None = None) -> Body:
        query = "" if revision is None else f"?revision={revision}"
        return self.call("GET", f"/v1/files/{file_id}{query}")

    def revisions(self, file_id: str) -> list[Body]:
        return list(self.call("GET", f"/v1/files/{file_id}/revisions")["revisions"])


    def usage(self, start: int | None = None, end: int | None = None) -> Body:
        """GET /v1/account/usage: this month, or [start, end) in epoch seconds."""
        query = "&".join(f"{k}={v}" for k, v in (("from", start), ("to", end)) if v is not None)
        return self.call("GET", "/v1/account/usage" + (f"?{query}" if query else ""))


def _read_into(r: requests.Response, view: memoryview, bucket: Any) -> memoryview:
    """Read a streamed body of exactly len(view) bytes into `view` (paying
    `bucket` block by block under --bwlimit); a body of another length is
    refused like any wrong range."""
    import urllib3
    got, block = 0, READ_BLOCK
    try:
        while got < len(view):
            n = r.raw.readinto(view[got:got + block])
            if not n:
                break
            if bucket is not None:
                bucket.take(n)
            got += n
        extra = r.raw.read(1) if got == len(view) else b""
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ServerUnreachable("a download from storage broke off") from exc
    finally:
        r.close()
    if got != len(view) or extra:
        raise ApiError(f"storage refused a download (HTTP {r.status_code})", r.status_code)
    return view

