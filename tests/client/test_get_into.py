"""Api.get_blob(into=...): a ranged body read straight into a reused buffer,
against a real HTTP server; a body of another length is refused like any
wrong range, and one that breaks off is the server going away, never a
traceback."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sealsync_client.api import READ_BLOCK, Api, ApiError, ServerUnreachable
from sealsync_client.bwlimit import Limiter, TokenBucket

BODY = os.urandom(3 * 1024 * 1024 + 7)


class Ranges(BaseHTTPRequestHandler):
    """Serves BODY's requested range; /long sends one byte more, /cut
    promises the range but closes the connection halfway."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        lo, hi = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
        data = BODY[lo:hi + 1] + (b"x" if self.path == "/long" else b"")
        self.send_response(206)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path == "/cut":
            self.wfile.write(data[:len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Ranges)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


@pytest.mark.parametrize("limited", [False, True], ids=["plain", "bwlimit"])
def test_a_range_lands_in_the_buffer_given(server: str, limited: bool) -> None:
    api = Api(server)
    taken: list[int] = []
    if limited:
        bucket = TokenBucket(1 << 40, sleep=lambda s: None)
        real = bucket.take
        bucket.take = lambda n: (taken.append(n), real(n))[1]  # type: ignore[method-assign]
        api.limiter = Limiter(None, bucket)
    buf = bytearray(4 * 1024 * 1024)
    got = api.get_blob(f"{server}/p", (1000, 2 * 1024 * 1024), into=buf)
    assert got.obj is buf and bytes(got) == BODY[1000:1000 + 2 * 1024 * 1024]
    again = api.get_blob(f"{server}/p", (5, 10), into=buf)  # the buffer reused
    assert bytes(again) == BODY[5:15]
    if limited:  # paid for block by block, every byte
        assert sum(taken) == 2 * 1024 * 1024 + 10 and max(taken) <= READ_BLOCK


def test_a_longer_body_is_refused(server: str) -> None:
    with pytest.raises(ApiError, match="refused a download"):
        Api(server).get_blob(f"{server}/long", (0, 100), into=bytearray(1000))


def test_a_body_that_breaks_off_is_the_server_going_away(server: str) -> None:
    with pytest.raises((ServerUnreachable, ApiError)) as caught:
        Api(server).get_blob(f"{server}/cut", (0, 1024 * 1024), into=bytearray(1 << 20))
    assert "download" in str(caught.value)
