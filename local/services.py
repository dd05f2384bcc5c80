"""Start the local pieces on 127.0.0.1: moto server, a real redis-server (or
an embedded fakeredis TCP server when none is installed), on free ports.
Used by `make dev` and by the integration tests alike."""
from __future__ import annotations

import copy
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any


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


_dynamodb_serialized = False


def serialize_moto_dynamodb() -> None:
    """Make moto's DynamoDB execute one request at a time, as DynamoDB does.

    moto is not safe under concurrent requests: a cancelled
    TransactWriteItems rolls back by restoring a deep copy of the whole table
    taken when it started, silently reverting writes other requests made
    meanwhile. Serializing requests (never the steps between them) keeps
    every race the pipeline can meet in real DynamoDB."""
    global _dynamodb_serialized
    if _dynamodb_serialized:
        return
    import threading

    from moto.dynamodb.responses import DynamoHandler

    one_at_a_time = threading.RLock()
    call_action = DynamoHandler.call_action

    def serialized(self: Any) -> Any:
        with one_at_a_time:
            return call_action(self)

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    _dynamodb_serialized = True


class _NoTableCopy:
    """Stands in for the `copy` module inside moto.dynamodb.models: a Table is
    returned as is (the whole-table backup becomes free), anything else is
    deep-copied as before."""

    @staticmethod
    def deepcopy(x: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, hash, range, deep copy of the item or None) for each item a
    transaction names; an op whose table or key is malformed is skipped, as
    it cannot write anything."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved: list[tuple[Any, ...]] = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables[op["TableName"]]
            key = op["Item"] if op_type == "Put" else op["Key"]
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(h, r)
        except Exception:  # noqa: BLE001 - moto reports the bad op itself
            continue
        saved.append((table, h, r, copy.deepcopy(current)))
    return saved


def _restore(saved: list[tuple[Any, ...]]) -> None:
    """Put every touched item back as it was (newest first, so a key named
    twice ends at its original value)."""
    for table, h, r, item in reversed(saved):
        if r is None:
            if item is None:
                table.items.pop(h, None)
            else:
                table.items[h] = item
        elif item is None:
            by_range = table.items.get(h)
            if by_range is not None:
                by_range.pop(r, None)
                if not by_range:
                    table.items.pop(h, None)
        else:
            table.items[h][r] = item


def snapshot_moto_transactions() -> Callable[[], None]:
    """Make moto's TransactWriteItems snapshot only the items it touches.

    moto 5.2.5 deep-copies every table a transaction names before running
    it, to roll back on cancellation, so each commit costs O(table size):
    ~330 ms at 1,300 items, and 10,000 small files would take hours. Here the
    backup is a deep copy of the named items alone, restored on any failure:
    the same all-or-nothing result, in O(items in the transaction). (It also
    no longer reverts writes other requests made to other items meanwhile.)
    Returns a function that undoes the patch (benchmarks compare both)."""
    from moto.dynamodb import models

    if getattr(models.DynamoDBBackend.transact_write_items, "_sealsync", False):
        return lambda: None
    original = models.DynamoDBBackend.transact_write_items
    real_copy = models.copy  # type: ignore[attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _touched(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore(saved)
            raise

    transact_write_items._sealsync = True  # type: ignore[attr-defined]
    models.copy = _NoTableCopy  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        models.copy = real_copy  # type: ignore[attr-defined]
        models.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo


class MotoServer:
    """moto in server mode (S3, DynamoDB, SQS, SNS) in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        serialize_moto_dynamodb()
        snapshot_moto_transactions()
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                          verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self._server.stop()


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
