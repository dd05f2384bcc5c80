"""A local stack that keeps its data: snapshots of moto's S3 and DynamoDB.

moto keeps everything in memory and has no persistence of its own. So the
moto process (local/moto.py) writes snapshots into a data directory
(default `.sealsync-data/` in the repository, git-ignored) at intervals, when
it is stopped, and when the stack that started it dies (even by kill -9),
and the stack restores the last snapshot through the ordinary AWS API when
it starts again:

    .sealsync-data/
      snapshot.json        format tag and version, when, every DynamoDB item
                           (DynamoDB JSON) and, per bucket, key -> blob
      objects/ab/abcd...   object bodies by SHA-256, written once, shared
      owner                the pid of the stack using this directory

Consistency: DynamoDB is read in one go under the lock that already makes
moto's DynamoDB answer one request at a time (local.moto_patches), so a snapshot
holds whole transactions or none: a point in time. S3 is read after it, so
every object that state names is there (Sealsync deletes only staging
objects, and never one a committed head names). A staging object caught
in flight is restored too and its event fires again, which the commit
pipeline takes as the duplicate it is; the sweeper finishes the rest. SQS
and Redis are not kept: the queue only carries those events, and Redis
only locks and wake-ups.

Restoring over the public API (not moto's internals) means a snapshot
outlives a moto upgrade; its format tag is checked, and a snapshot this
code does not understand stops the stack with a message instead of being
overwritten.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("sealsync.persist")

FORMAT = "sealsync-local-stack-snapshot"
VERSION = 1
SNAPSHOT = "snapshot.json"
OWNER = "owner"


class SnapshotError(RuntimeError):
    """The data directory cannot be used as it is; the message says why."""


# -- DynamoDB JSON <-> what boto3's low-level client takes -------------------
def _to_wire(value: Any) -> Any:
    """An attribute value as DynamoDB's JSON wire format (binary: base64)."""
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    return value


def _from_wire(value: Any) -> Any:
    """The reverse, for boto3, which wants bytes for B and BS."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == "B":
                out[k] = base64.b64decode(v)
            elif k == "BS":
                out[k] = [base64.b64decode(b) for b in v]
            else:
                out[k] = _from_wire(v)
        return out
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value


def _write_atomic(path: Path, data: bytes | Iterator[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for block in ([data] if isinstance(data, bytes) else data):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class DataDir:
    """The data directory: who owns it, and its last snapshot."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def claim(self, pid: int, alive: Callable[[int], bool]) -> None:
        """Refuse a directory another running stack writes to."""
        self.path.mkdir(parents=True, exist_ok=True)
        owner = self.path / OWNER
        try:
            other = int(owner.read_text().strip())
        except (OSError, ValueError):
            other = 0
        if other and other != pid and alive(other):
            raise SnapshotError(f"another stack (pid {other}) keeps its data in {self.path}; "
                                "stop it, or pass --data-dir DIR or --ephemeral")
        _write_atomic(owner, f"{pid}\n".encode())

    def release(self, pid: int) -> None:
        owner = self.path / OWNER
        try:
            if int(owner.read_text().strip()) == pid:
                owner.unlink()
        except (OSError, ValueError):
            pass

    def load(self) -> dict[str, Any] | None:
        """The last snapshot, or None; SnapshotError if it is not ours to read."""
        try:
            raw = (self.path / SNAPSHOT).read_bytes()
        except FileNotFoundError:
            return None
        try:
            snap = json.loads(raw)
            tag, version = snap.get("format"), snap.get("version")
        except (ValueError, AttributeError):
            tag = version = None
        if tag != FORMAT or version != VERSION:
            raise SnapshotError(
                f"{self.path / SNAPSHOT} is not a snapshot this version can read (format "
                f"{tag!r} version {version!r}, expected {FORMAT!r} version {VERSION}); it "
                "was left untouched: move the directory away to start empty, or run with "
                "--ephemeral")
        return dict(snap)

    def blob(self, digest: str) -> Path:
        return self.path / "objects" / digest[:2] / digest

    # -- restore (the stack, over the AWS API, before anything serves) -------
    def restore(self, s3: Any, dynamodb: Any) -> str:
        """Put the last snapshot back; a line for the log."""
        snap = self.load()
        if snap is None:
            return f"no snapshot in {self.path}: starting empty"
        items = objects = 0
        for table, rows in snap["tables"].items():
            for i in range(0, len(rows), 25):
                request = {table: [{"PutRequest": {"Item": _from_wire(r)}}
                                   for r in rows[i:i + 25]]}
                while request:
                    request = dynamodb.batch_write_item(RequestItems=request).get(
                        "UnprocessedItems") or {}
            items += len(rows)
        for bucket, keys in snap["buckets"].items():
            for key, meta in keys.items():
                with self.blob(meta["sha256"]).open("rb") as body:
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                objects += 1
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(snap["taken_at"]))
        return f"restored {items} items and {objects} objects from the snapshot of {when}"


class Snapshotter:
    """Runs in the moto process: reads its backends and writes snapshots.

    `lock` is the lock every DynamoDB request holds (local.moto_patches), so the
    tables are read between two requests, never inside one."""

    def __init__(self, data: DataDir, lock: Any) -> None:
        self.data = data
        self.lock = lock
        self._one = threading.Lock()  # one snapshot at a time
        previous = None
        with contextlib.suppress(SnapshotError):  # the stack refuses it and never arms us
            previous = data.load()
        # key -> (etag, sha256) from the last snapshot: unchanged objects are not read again
        self._known: dict[tuple[str, str], tuple[str, str]] = {
            (b, k): (m["etag"], m["sha256"])
            for b, keys in (previous or {}).get("buckets", {}).items() for k, m in keys.items()}

    def take(self) -> str:
        with self._one:
            started = time.monotonic()
            tables = self._tables()
            buckets, written = self._buckets()
            snap = {"format": FORMAT, "version": VERSION, "taken_at": int(time.time()),
                    "tables": tables, "buckets": buckets}
            _write_atomic(self.data.path / SNAPSHOT, json.dumps(snap).encode())
            removed = self._collect({m["sha256"] for keys in buckets.values()
                                     for m in keys.values()})
            return (f"snapshot: {sum(map(len, tables.values()))} items, "
                    f"{sum(map(len, buckets.values()))} objects ({written} new, {removed} "
                    f"dropped) in {time.monotonic() - started:.2f}s")

    @staticmethod
    def _backends(name: str) -> Iterator[Any]:
        from moto.core.models import DEFAULT_ACCOUNT_ID

        if name == "dynamodb":
            from moto.dynamodb.models import dynamodb_backends
            yield from dynamodb_backends[DEFAULT_ACCOUNT_ID].values()
        else:
            from moto.s3.models import s3_backends
            yield from s3_backends[DEFAULT_ACCOUNT_ID].values()

    def _tables(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        with self.lock:  # a point in time: whole transactions or none
            for backend in self._backends("dynamodb"):
                for name, table in backend.tables.items():
                    out[name] = [_to_wire(item.to_json()["Attributes"])
                                 for item in table.all_items()]
        return out

    def _buckets(self) -> tuple[dict[str, dict[str, Any]], int]:
        out: dict[str, dict[str, Any]] = {}
        written = 0
        for backend in self._backends("s3"):
            for bucket_name, bucket in list(backend.buckets.items()):
                keys: dict[str, Any] = {}
                for key_name, key in list(bucket.keys.items()):
                    try:
                        etag = str(key.etag)
                        known = self._known.get((bucket_name, key_name))
                        if known and known[0] == etag and self.data.blob(known[1]).exists():
                            digest = known[1]
                        else:
                            value = key.value  # the whole body: objects are ≤ 16 MiB chunks
                            digest = hashlib.sha256(value).hexdigest()
                            if not self.data.blob(digest).exists():
                                _write_atomic(self.data.blob(digest), value)
                                written += 1
                    except (ValueError, OSError, AttributeError) as exc:  # deleted meanwhile
                        log.debug("snapshot skips %s/%s: %s", bucket_name, key_name, exc)
                        continue
                    keys[key_name] = {"etag": etag, "sha256": digest}
                    self._known[(bucket_name, key_name)] = (etag, digest)
                out[bucket_name] = keys
        return out, written

    def _collect(self, keep: set[str]) -> int:
        """Delete blobs the snapshot just written no longer names."""
        removed = 0
        for path in (self.data.path / "objects").glob("*/*"):
            if path.name not in keep and not path.name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
