"""Start the local pieces on 127.0.0.1: a real redis-server (or an embedded
fakeredis TCP server when none is installed, announced) on free ports, the
port helpers every local server uses (moto lives in local.moto), and
`Periodic`, the timer the stack runs its schedules on (sweeper, scheduler,
replicator). Used by `make dev` and by the integration tests alike."""
from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

log = logging.getLogger("sealsync.stack")  # Periodic's failures: the stack's own log

FALLBACK_BANNER = """
{rule}
!!  WARNING: redis-server is NOT in use ({why}).
!!  Redis is fakeredis, an embedded Python imitation, on {url}.
!!  It speaks the protocol but is not Redis: timings, memory limits and
!!  failure modes differ. Install redis-server (apt-get install redis-server,
!!  or `make test-tools` as root) to run against the real thing.
{rule}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    """A real redis-server subprocess with no persistence; it can be stopped
    and started again on the same port (to test Redis restarts)."""

    def __init__(self, port: int | None = None) -> None:
        path = redis_server_path()
        if path is None:
            raise FileNotFoundError("redis-server is not installed")
        self.path = path
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="sealsync-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.path, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class FakeRedisServer:
    """The fallback when redis-server is missing: fakeredis over TCP."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: Any = None
        self._thread: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> FakeRedisServer:
        import threading

        import fakeredis

        self._server = fakeredis.TcpFakeServer(("127.0.0.1", self.port),
                                               server_type="redis")
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_redis(port: int | None, fake: bool) -> tuple[RedisServer | FakeRedisServer, str]:
    """redis-server when installed and not `fake`, else the embedded
    fakeredis, announced loudly on stderr; and which one it is."""
    if not fake and redis_server_path() is not None:
        return RedisServer(port).start(), "redis-server"
    server = FakeRedisServer(port).start()
    why = "--fake-redis was given" if fake else "redis-server is not installed"
    sys.stderr.write(FALLBACK_BANNER.format(rule="!" * 76, why=why, url=server.url))
    sys.stderr.flush()
    return server, "fakeredis (embedded fallback)"


class Periodic:
    """Call `fn` every `interval_s` on a daemon thread until stopped."""

    def __init__(self, name: str, interval_s: float, fn: Any) -> None:
        self.interval_s = interval_s
        self.fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.fn()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                log.warning("%s failed: %s: %s", self._thread.name, type(exc).__name__, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
