"""The byte-counting proxy counts exactly what a client puts on the wire and
forwards requests and answers unchanged."""
from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.proxy import CountingProxy, Counts


class Echo(BaseHTTPRequestHandler):
    """Upstream: answers each request with its method and body."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        Echo.seen.append((self.command, self.path, body))
        out = f"{self.command} {len(body)}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _answer


@pytest.fixture
def proxy() -> Iterator[CountingProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    Echo.seen = []
    with CountingProxy(upstream.server_address[1]) as p:
        yield p
    upstream.shutdown()
    upstream.server_close()


def raw(port: int, request: bytes) -> bytes:
    """Send bytes as they are; the answer to one request."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request)
        s.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: s.recv(65536), b""))


def test_counts_every_byte_and_each_method(proxy: CountingProxy) -> None:
    put = (b"PUT /bucket/key HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
           b"Connection: close\r\n\r\nhello")
    answer = raw(proxy.port, put)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"PUT 5")
    get = b"GET /bucket/key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert raw(proxy.port, get).endswith(b"GET 0")
    c = proxy.snapshot()
    assert c.bytes_sent == len(put) + len(get)
    assert c.body_bytes == 5
    assert dict(c.methods) == {"PUT": 1, "GET": 1}
    assert Echo.seen == [("PUT", "/bucket/key", b"hello"), ("GET", "/bucket/key", b"")]


def test_chunked_bodies_are_forwarded_whole_and_counted_with_framing(
        proxy: CountingProxy) -> None:
    req = (b"PUT /k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n")
    assert raw(proxy.port, req).endswith(b"PUT 5")
    assert Echo.seen == [("PUT", "/k", b"abcde")]
    assert proxy.snapshot().bytes_sent == len(req)
    assert proxy.snapshot().body_bytes == 5


def test_keep_alive_expect_continue_and_head(proxy: CountingProxy) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port)
    for i in range(3):
        conn.request("PUT", f"/o{i}", body=b"x" * 1000, headers={"Expect": "100-continue"})
        resp = conn.getresponse()
        assert resp.read() == b"PUT 1000"
    conn.request("HEAD", "/o0")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()
    c = proxy.snapshot()
    assert c.methods == {"PUT": 3, "HEAD": 1}
    assert c.body_bytes == 3000 and c.bytes_sent > 3000


def test_counts_difference() -> None:
    before = Counts(100, 10)
    before.methods.update({"PUT": 2})
    after = Counts(350, 60)
    after.methods.update({"PUT": 5, "GET": 1})
    d = after.minus(before)
    assert (d.bytes_sent, d.body_bytes, d.requests) == (250, 50, 4)
    assert d.as_dict()["by_method"] == {"GET": 1, "PUT": 3}


def test_body_bytes_by_route_with_ids_folded(proxy: CountingProxy) -> None:
    from benchmarks.proxy import route

    pack = "/bucket/packs/" + "a" * 32 + "/" + "b" * 32
    assert route("PUT", pack + "?X-Amz-Signature=1") == "PUT /bucket/packs/*/*"
    assert route("POST", "/v1/chunks/missing") == "POST /v1/chunks/missing"
    assert route("GET", "/v1/batches/" + "c" * 32) == "GET /v1/batches/*"
    before = proxy.snapshot()
    for body in (b"x" * 7, b"y" * 5):
        raw(proxy.port, f"PUT {pack} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                        "Connection: close\r\n\r\n".encode() + body)
    raw(proxy.port, b"GET /bucket/k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    d = proxy.snapshot().minus(before)
    assert d.as_dict()["body_bytes_by_route"] == {"PUT /bucket/packs/*/*": 12}
    assert d.route_bodies["GET /bucket/k"] == 0  # counted, with no body


def test_batch_handler_figure() -> None:
    from benchmarks.peers import batch_handler_ms

    runs = [{"ms": 400.0, "messages": 1}, {"ms": 600.0, "messages": 2}]
    assert batch_handler_ms(runs, 3000) == {
        "per_1000_files": 333.3, "per_batch": 333.3, "invocations": 2, "batches": 3,
        "files": 3000, "total_ms": 1000.0, "invocations_per_1000_files": 0.67}
    assert batch_handler_ms([], 3000) == {}


def test_ddb_requests_per_1000_files_count_from_the_baseline() -> None:
    """The lines carry the stack's cumulative counts: the window's figure is
    its highest count less the baseline before it, whatever the line order."""
    from benchmarks.peers import batch_handler_ms

    runs = [{"ms": 1.0, "messages": 1, "ddb_writes": 180, "ddb_reads": 60},
            {"ms": 1.0, "messages": 1, "ddb_writes": 150, "ddb_reads": 50}]
    got = batch_handler_ms(runs, 2000, {"ddb_writes": 100, "ddb_reads": 40})
    assert got["ddb_writes_per_1000_files"] == 40.0
    assert got["ddb_reads_per_1000_files"] == 10.0
    assert batch_handler_ms(runs, 2000)["ddb_writes_per_1000_files"] == 90.0
