"""Issue 15: the client refuses plain http:// except to this machine, and
backs off (saying so) when the server answers 429."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sealsync_client.api import Api, RateLimited, check_server_url
from sealsync_client.errors import UsageError
from sealsync_client.folder import init_folder


@pytest.mark.parametrize("url", [
    "https://sync.example.com", "https://10.0.0.1:8443/api", "http://localhost:8000",
    "http://127.0.0.1:8000", "http://127.9.9.9", "http://[::1]:8000/"])
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert check_server_url(url) == url


@pytest.mark.parametrize("url", [
    "http://sync.example.com", "http://10.0.0.1:8000", "http://192.168.1.5",
    "http://localhost.evil.example", "http://127.0.0.1.nip.io", "http://[::2]:80",
    "ftp://127.0.0.1", "127.0.0.1:8000", "https://", "http://"])
def test_plain_http_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(UsageError):
        Api(url)


def test_init_refuses_an_insecure_server_before_sending_anything(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="in clear"):
        init_folder(tmp_path / "x", "http://sync.example.com", "correct horse battery staple")
    assert not (tmp_path / "x").exists()


class Limited(BaseHTTPRequestHandler):
    """Answers 429 (Retry-After from the server's `waits` list) until the
    list is empty, then 201."""

    waits: list[str] = []
    seen = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).seen += 1
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.waits:
            body, status = {"error": "rate_limited", "message": "slow down"}, 429
            retry = self.waits.pop(0)
        else:
            body, status, retry = {"user_id": "ab" * 16}, 201, ""
        data = json.dumps(body).encode()
        self.send_response(status)
        if retry:
            self.send_header("Retry-After", retry)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def limited() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Limited)
    Limited.seen = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_short_429_is_waited_out_and_reported(limited: str) -> None:
    Limited.waits = ["1"]
    told: list[str] = []
    api = Api(limited, on_wait=told.append)
    assert api.create_account("00" * 32, "kdf") == "ab" * 16
    assert Limited.seen == 2
    assert told == ["the server asks this device to slow down; retrying in 1 s"]


def test_a_long_429_is_reported_at_once_not_slept_through(limited: str) -> None:
    Limited.waits = ["3600"]
    told: list[str] = []
    with pytest.raises(RateLimited, match="try again in 3600 s") as caught:
        Api(limited, on_wait=told.append).create_account("00" * 32, "kdf")
    assert caught.value.retry_after_s == 3600 and told == [] and Limited.seen == 1


def test_push_never_sends_the_token_over_plain_ws_off_this_machine() -> None:
    from sealsync_client.push import _safe_ws_url

    assert _safe_ws_url("wss://push.example.com/api") and _safe_ws_url("ws://127.0.0.1:8001")
    assert not _safe_ws_url("ws://push.example.com/api")
    assert not _safe_ws_url("ws://localhost.evil.example") and not _safe_ws_url("http://[::1]")
