"""A byte-counting HTTP forwarder: every tool under test (sealsync, rclone,
restic) talks to moto's S3 through one of these, so bytes sent and PUTs are
counted the same way for all three.

It counts what the client puts on the wire (request line, headers and body,
including any chunk framing) and the requests per method, then forwards
each request to the upstream over a keep-alive connection and streams the
answer back. `Expect: 100-continue` is answered here.
"""
from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO

BLOCK = 1 << 16
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
              "transfer-encoding", "upgrade", "expect"}
_ID_SEGMENT = re.compile(r"[0-9a-fA-F-]{16,}")


def route(method: str, path: str) -> str:
    """`METHOD /path` with the query dropped and every id-like segment (hex
    or a UUID) as `*`: what a byte breakdown is keyed by."""
    parts = path.split("?", 1)[0].split("/")
    return f"{method} " + "/".join("*" if _ID_SEGMENT.fullmatch(p) else p for p in parts)


@dataclass
class Counts:
    """What clients sent through the proxy."""

    bytes_sent: int = 0          # every byte read from clients
    body_bytes: int = 0          # request bodies alone (de-chunked)
    methods: Counter[str] = field(default_factory=Counter)
    route_bodies: Counter[str] = field(default_factory=Counter)  # body bytes by `route`

    def copy(self) -> Counts:
        return Counts(self.bytes_sent, self.body_bytes, Counter(self.methods),
                      Counter(self.route_bodies))

    def minus(self, before: Counts) -> Counts:
        """What was sent since `before` (a copy taken earlier)."""
        methods, routes = Counter(self.methods), Counter(self.route_bodies)
        methods.subtract(before.methods)
        routes.subtract(before.route_bodies)
        return Counts(self.bytes_sent - before.bytes_sent,
                      self.body_bytes - before.body_bytes, +methods, +routes)

    @property
    def requests(self) -> int:
        return sum(self.methods.values())

    def as_dict(self) -> dict[str, Any]:
        return {"bytes_sent": self.bytes_sent, "body_bytes": self.body_bytes,
                "requests": self.requests, "by_method": dict(sorted(self.methods.items())),
                "body_bytes_by_route": dict(self.route_bodies.most_common())}


class _CountingReader:
    """Wraps the client socket's file; counts every byte read through it."""

    def __init__(self, raw: BinaryIO, add: Any) -> None:
        self._raw = raw
        self._add = add

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._add(len(data))
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._raw.readline(limit)
        self._add(len(data))
        return data

    def close(self) -> None:
        self._raw.close()


def read_chunked(rfile: Any) -> bytes:
    """A chunked request body, de-chunked (trailers dropped)."""
    parts: list[bytes] = []
    while True:
        size = int(rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline(3)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.rfile = _CountingReader(  # type: ignore[assignment]
            self.rfile, self.server.add_bytes)  # type: ignore[arg-type]
        self.upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _forward(self) -> None:
        length = self.headers.get("Content-Length")
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body: bytes | None = read_chunked(self.rfile)
        elif length:
            body = self.rfile.read(int(length))
        else:
            body = None
        self.server.add_request(self.command, len(body or b""), route(self.command, self.path))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        for attempt in (0, 1):  # a keep-alive connection upstream may have gone stale
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.server.upstream, timeout=120)
            try:
                self.upstream.request(self.command, self.path, body=body, headers=headers)
                resp = self.upstream.getresponse()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self.upstream.close()
                self.upstream = None
                if attempt:
                    self.send_error(502, "upstream unreachable")
                    return
        self.send_response_only(resp.status, resp.reason)
        no_body = self.command == "HEAD" or resp.status in (204, 304)
        whole = None if no_body or resp.getheader("Content-Length") else resp.read()
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and not (whole is not None
                                                     and k.lower() == "content-length"):
                self.send_header(k, v)
        if whole is not None:  # upstream sent it chunked: hand it on with a length
            self.send_header("Content-Length", str(len(whole)))
        self.end_headers()
        if whole is not None:
            self.wfile.write(whole)
        elif not no_body:
            while block := resp.read(BLOCK):
                self.wfile.write(block)
        else:
            resp.read()
        if resp.will_close and self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, upstream: tuple[str, int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self._lock = threading.Lock()
        self.counts = Counts()

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.counts.bytes_sent += n

    def add_request(self, method: str, body: int, where: str) -> None:
        with self._lock:
            self.counts.methods[method] += 1
            self.counts.body_bytes += body
            self.counts.route_bodies[where] += body

    def snapshot(self) -> Counts:
        with self._lock:
            return self.counts.copy()


class CountingProxy:
    """Start with `with CountingProxy(port) as p:`; p.url is its address."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self._server = _Server((upstream_host, upstream_port))
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="counting-proxy", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> Counts:
        return self._server.snapshot()

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

