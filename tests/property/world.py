"""The world the commit state machine drives: a fresh table and bucket on a
moto server, a real redis-server, the Chalice app through its test client,
one account with two devices, and real client crypto (sealed manifests and
chunks whose plaintext carries marker strings, for the zero-knowledge scan).

Nothing here decides what is right: that is `model.py`. This module only
performs actions (API calls, S3 PUTs, handler deliveries) and reads state.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import secrets
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from chalice.test import Client
from sealsync_client.chunk_delta import against_base, chunks_sha256
from sealsync_client.history import ZERO, sign_linked
from sealsync_client.keys import AccountKeys
from sealsync_client.manifest import ChunkRef, Link, Manifest, ManifestPlace, seal_manifest
from sealsync_client.pack import PackWriter
from sealsync_client.pipeline import seal_chunk

from chalicelib.commit import commit_keys
from chalicelib.config import Runtime, set_runtime
from chalicelib.core.errors import Unavailable
from chalicelib.core.ids import staging_key
from chalicelib.sweeper import SweepReport, sweep
from local.apiclient import sign_entry, sign_revoke
from local.moto import MotoServer
from local.resources import create_all
from local.services import RedisServer
from tests.harness import Device, Harness, settings

STEPS = ("locked", "checked", "decided", "copied", "committed", "cleaned")
LOCK_TTL_MS = 3000
STALE_LOCK_MS = 40  # a hard-crashed handler's lock, left to expire


class InjectedCrash(Exception):
    """The handler died at a step boundary (Lambda timeout, OOM, kill)."""


RETRYABLE = (InjectedCrash, Unavailable)  # a fence lost too often is Unavailable


@dataclass
class Chunk:
    id: str
    size: int  # plaintext
    envelope: bytes


@dataclass
class Upload:
    """One upload as the test made it. `kind` says what it should become:
    write/rename/delete are valid; missing (a chunk never PUT), badsize (the
    manifest is not the declared size) and abandoned (no manifest PUT yet)
    must never be accepted."""

    upload_id: str
    file_id: str
    device: int
    base: int
    kind: str
    manifest: bytes  # the exact bytes PUT to staging (b"" for a delete)
    chunks: tuple[Chunk, ...] = ()
    path: str = ""
    staged: bool = False
    # An entry of a batch: `upload_id` is "{batch}.{index}" (unique in the
    # model); the server knows it as `batch`, its manifest at `offset` of
    # the bundle. A v1 upload or delete is a batch of one: `batch` is its
    # upload id, and its bundle the manifest alone (`bundle` stays empty).
    batch: str | None = None
    index: int = 0
    offset: int = 0
    bundle: bytes = b""
    # kind "swapped": its staged bytes were replaced mid-commit; what it was
    swapped_from: str = ""

    @property
    def tombstone(self) -> bool:
        return self.kind == "delete"

    @property
    def server_id(self) -> str:
        """The id the server records for this version (head `upload`)."""
        return self.batch or self.upload_id


@dataclass
class Snapshot:
    """Every item of the table and every object's key -> ETag, read at once."""

    items: list[dict[str, Any]]
    etags: dict[str, str]


@dataclass
class Markers:
    tag: str = field(default_factory=lambda: secrets.token_hex(5))

    def name(self, n: int) -> str:
        return f"zkNAME{self.tag}/notes-{n}.txt"

    def body(self, n: int) -> bytes:
        return f"zkBODY{self.tag} content {n} ".encode() * (1 + n % 7)

    def all(self) -> list[str]:
        return [f"zkNAME{self.tag}", f"zkBODY{self.tag}"]


class LogCapture(logging.Handler):
    """Every log record of the run, formatted with its traceback (what a
    Lambda's log stream would hold), plus tracebacks of crashed handlers."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def crashed(self, exc: BaseException) -> None:
        self.lines.extend(traceback.format_exception(exc))


def etag_of(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324 - S3's ETag


class World:
    def __init__(self, moto: MotoServer, redis: RedisServer) -> None:
        name = f"sealsync-prop-{secrets.token_hex(6)}"
        self.redis_server = redis
        self.rt = Runtime(settings(
            SEALSYNC_AWS_ENDPOINT=moto.url, SEALSYNC_TABLE=name, SEALSYNC_BUCKET=name,
            SEALSYNC_REDIS_URL=redis.url, SEALSYNC_LOCK_TTL_MS=str(LOCK_TTL_MS),
            SEALSYNC_LOCK_WAIT_S="0.02"))
        create_all(self.rt, queue=None)
        set_runtime(self.rt)
        from app import app

        self.h = Harness(self.rt, Client(app))
        first = self.h.signup()
        self.devices: list[Device] = [
            first, self.h.add_device(first.user_id, first.auth_key, first.account_seed)]
        self.user_id = first.user_id
        self.keys = AccountKeys(secrets.token_bytes(32))
        self.ring = self.keys.root_keyring()
        self.signer = self.keys.signing_key()
        self.markers = Markers()
        self.logs = LogCapture()
        logging.getLogger().addHandler(self.logs)
        self._n = 0
        self.packs: dict[str, bytes] = {}  # every pack made, by id (the model reads it)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.logs)
        set_runtime(None)
        with contextlib.suppress(Exception):
            self.rt.dynamodb.delete_table(TableName=self.rt.settings.table)
        for client in ("redis", "redis_blocking", "s3", "dynamodb"):
            if client in self.rt.__dict__:
                with contextlib.suppress(Exception):
                    self.rt.__dict__[client].close()

    # -- building versions with the client's crypto ----------------------------
    def new_chunks(self, count: int) -> tuple[Chunk, ...]:
        out = []
        for _ in range(count):
            self._n += 1
            data = self.markers.body(self._n) + secrets.token_bytes(16)
            cid, env = seal_chunk(self.ring, self.user_id, data)
            out.append(Chunk(cid, len(data), env))
        return tuple(out)

    def seal(self, file_id: str, base: int, path: str, chunks: tuple[Chunk, ...],
             device: int) -> bytes:
        m = Manifest(path=path, size=sum(c.size for c in chunks), mtime_ns=time.time_ns(),
                     mode=0o644, device=f"device-{device}",
                     chunks=tuple(ChunkRef(c.id, c.size) for c in chunks))
        place = ManifestPlace.for_upload(self.user_id, file_id, base)
        self._n += 1  # the device counter: unique per signed version
        link = Link(ZERO, f"{device + 1:032x}", self._n, 0, ZERO)
        return seal_manifest(self.ring, place, sign_linked(self.signer, self.ring, place, m, link))

    def next_path(self) -> str:
        self._n += 1
        return self.markers.name(self._n)

    # -- the API -----------------------------------------------------------------
    def thief(self, device: int) -> Device:
        """A leaked token of `device`: everything but its device key."""
        return dataclasses.replace(self.devices[device], device_seed=secrets.token_bytes(32))

    def enrol(self) -> int:
        """A new device of the account; its index."""
        first = self.devices[0]
        self.devices.append(self.h.add_device(first.user_id, first.auth_key,
                                              first.account_seed))
        return len(self.devices) - 1

    def revoke(self, device: int) -> None:
        dev = self.devices[device]
        r = self.h.delete(f"/v1/devices/{dev.device_id}?signature="
                          f"{sign_revoke(self.devices[0], dev.device_id)}", self.devices[0])
        assert r.status_code == 200, r.body

    def create_upload(self, device: int, file_id: str, base: int, kind: str, path: str,
                      chunks: tuple[Chunk, ...], signer: Device | None = None,
                      ) -> tuple[Upload, dict[str, str]]:
        manifest = self.seal(file_id, base, path, chunks, device)
        body = {"file_id": file_id, "base_revision": base, "manifest_size": len(manifest),
                "chunks": [{"id": c.id, "size": len(c.envelope)} for c in chunks],
                "signature": sign_entry(signer or self.devices[device], file_id, base,
                                        manifest, [c.id for c in chunks])}
        r = self.h.post("/v1/uploads", body, self.devices[device])
        assert r.status_code == 201, r.body
        # a batch of one (docs/DESIGN.md "One protocol"): its bundle is the manifest
        up = Upload(r.json_body["upload_id"], file_id, device, base, kind, manifest, chunks,
                    path, batch=r.json_body["upload_id"])
        return up, dict(r.json_body["chunk_urls"])

    def create_batch(self, device: int, entries: list[tuple[str, int, str, str,
                                                           tuple[Chunk, ...]]],
                     packs: list[dict[str, Any]] | None = None,
                     signer: Device | None = None,
                     bases: dict[str, list[str]] | None = None,
                     ) -> tuple[list[Upload], dict[str, str]]:
        """POST /v1/batches for (file, base, kind, path, chunks) entries,
        declaring `packs` (from `make_pack`) if given. An entry whose file is
        in `bases` (its base revision's chunk list) sends its chunks as the
        client does: ranges of that list where they match (chunk_delta.py)."""
        manifests = [self.seal(f, base, path, chunks, device)
                     for f, base, _, path, chunks in entries]
        body = {"entries": [{"file_id": f, "base_revision": base, "manifest_size": len(m),
                             **self._chunk_list(chunks, (bases or {}).get(f))}
                            for (f, base, _, _, chunks), m in zip(entries, manifests,
                                                                   strict=True)]}
        if packs:
            body["packs"] = packs
        r = self.h.post("/v1/batches", body, self.devices[device])
        assert r.status_code == 201, r.body
        trailer = b"".join(bytes.fromhex(sign_entry(signer or self.devices[device], f, base, m,
                                                    [c.id for c in chunks]))
                           for (f, base, _, _, chunks), m in zip(entries, manifests,
                                                                  strict=True))
        batch_id, bundle = r.json_body["batch_id"], b"".join(manifests) + trailer
        ups, at = [], 0
        for i, ((f, base, kind, path, chunks), m) in enumerate(zip(entries, manifests,
                                                                   strict=True)):
            ups.append(Upload(f"{batch_id}.{i}", f, device, base, kind, m, chunks, path,
                              batch=batch_id, index=i, offset=at, bundle=bundle))
            at += len(m)
        return ups, dict(r.json_body["chunk_urls"])

    @staticmethod
    def _chunk_list(chunks: tuple[Chunk, ...], base: list[str] | None) -> dict[str, Any]:
        refs = [(c.id, len(c.envelope)) for c in chunks]
        if base is None:
            return {"chunks": [{"id": cid, "size": size} for cid, size in refs]}
        return {"chunks": against_base(base, refs),
                "chunks_sha256": chunks_sha256([cid for cid, _ in refs])}

    def make_pack(self, chunks: list[Chunk]) -> dict[str, Any]:
        """A real pack (the client's format) of these chunks' envelopes; its
        declaration, as the client sends it. The bytes are kept in `packs`."""
        writer = PackWriter(self.ring, self.user_id)
        for c in chunks:
            assert writer.add(c.id, c.envelope)
        sealed = writer.finish()
        self.packs[sealed.pack_id] = sealed.data
        return {"pack_id": sealed.pack_id, "size": len(sealed.data),
                "blobs": [{"chunk": b.chunk_id, "offset": b.offset, "length": b.length}
                          for b in sealed.blobs]}

    def put_pack(self, pack_id: str, lie: bool = False) -> None:
        """PUT a pack create-only; with `lie`, one byte more than declared."""
        self.rt.s3.put_object(Bucket=self.rt.settings.bucket, IfNoneMatch="*",
                              Key=f"packs/{self.user_id}/{pack_id}",
                              Body=self.packs[pack_id] + (b"\0" if lie else b""))

    def envelope(self, chunk_id: str) -> bytes:
        """A stored chunk as a reader finds it: where the chunk index says
        (a range of a pack), else its v1 object."""
        got = self.rt.dynamodb.get_item(
            TableName=self.rt.settings.table, ConsistentRead=True,
            Key={"pk": {"S": f"L#{self.user_id}"}, "sk": {"S": chunk_id}}).get("Item", {})
        if "pack" not in got:
            return self.body(f"chunks/{self.user_id}/{chunk_id}")
        at, n = int(got["off"]["N"]), int(got["len"]["N"])
        return self.rt.s3.get_object(  # type: ignore[no-any-return]
            Bucket=self.rt.settings.bucket, Key=f"packs/{self.user_id}/{got['pack']['S']}",
            Range=f"bytes={at}-{at + n - 1}")["Body"].read()

    def put_bundle(self, ups: list[Upload], body: bytes | None = None) -> str:
        key = staging_key(self.user_id, str(ups[0].batch))
        self.rt.s3.put_object(Bucket=self.rt.settings.bucket, Key=key,
                              Body=ups[0].bundle if body is None else body)
        for up in ups:
            up.staged = True
        return key

    def put_chunks(self, chunks: tuple[Chunk, ...]) -> None:
        """PUT each chunk create-only, as the client does; 412 = already there."""
        for c in chunks:
            try:
                self.rt.s3.put_object(Bucket=self.rt.settings.bucket, IfNoneMatch="*",
                                      Key=f"chunks/{self.user_id}/{c.id}", Body=c.envelope)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "PreconditionFailed":
                    raise

    def put_manifest(self, up: Upload, body: bytes | None = None) -> str:
        key = staging_key(self.user_id, up.upload_id)
        self.rt.s3.put_object(Bucket=self.rt.settings.bucket, Key=key,
                              Body=up.manifest if body is None else body)
        up.staged = True
        return key

    def delete_file(self, device: int, file_id: str, base: int) -> Upload:
        r = self.h.delete_file(self.devices[device], file_id, base)
        assert r.status_code == 202, r.body
        return Upload(r.json_body["upload_id"], file_id, device, base, "delete", b"",
                      staged=True, batch=r.json_body["upload_id"])

    def refuse_delete(self, device: int, file_id: str) -> None:
        r = self.h.delete_file(self.devices[device], file_id, 0)
        assert r.status_code == 400, r.body

    def head_revision(self, device: int, file_id: str) -> tuple[int, str | None]:
        """What a device learns from GET /v1/files/{id}: (revision, upload id
        of that revision as the server records it)."""
        got = self.h.head(self.devices[device], file_id)
        if got is None:
            return 0, None
        head = self.rt.meta.get_revision(self.user_id, file_id, got["revision"])
        return int(got["revision"]), head.upload_id if head else None

    # -- the handler ---------------------------------------------------------------
    def deliver(self, keys: list[str], fault: Callable[[str], None]) -> BaseException | None:
        """One invocation of the SQS handler's work for a batch. Returns the
        retryable failure (the event comes back), or None when it succeeded.
        Anything else escaping is a bug and propagates."""
        try:
            commit_keys(self.rt, keys, fault)
        except RETRYABLE as exc:
            self.logs.crashed(exc)
            return exc
        return None

    def lock_key(self, file_id: str) -> str:
        return self.rt.locks.key(self.user_id, file_id)

    def leave_stale_lock(self, file_id: str) -> None:
        """What a handler killed mid-commit leaves: its lock, until the TTL."""
        with contextlib.suppress(Exception):
            self.rt.redis.set(self.lock_key(file_id), "dead-handler", px=STALE_LOCK_MS)

    def expire_lock(self, file_id: str) -> None:
        self.rt.redis.delete(self.lock_key(file_id))

    def restart_redis(self) -> None:
        self.redis_server.stop()
        self.redis_server.start()

    @contextlib.contextmanager
    def redis_down(self) -> Iterator[None]:
        self.redis_server.stop()
        try:
            yield
        finally:
            self.redis_server.start()

    def sweep(self, past_cutoff: bool = True) -> SweepReport:
        """The scheduled sweeper, now or with the clock past every cutoff."""
        skew = self.rt.settings.sweep_after_s + 5 if past_cutoff else 0
        return sweep(self.rt, now=time.time() + skew)

    def collect(self, past_grace: bool = True) -> dict[str, int]:
        """The `gc` job, now (nothing is old enough: it must delete nothing)
        or with the clock past the grace period (everything unreferenced goes)."""
        from chalicelib.gc import collect

        skew = self.rt.settings.gc_grace_s + 5 if past_grace else 0
        return collect(self.rt, int(time.time()) + skew, full=True)

    def learn_server_packs(self) -> None:
        """Packs the collector wrote (repacks) join the packs the test knows,
        so the model checks each located chunk's range in them byte for byte."""
        prefix = f"packs/{self.user_id}/"
        pages = self.rt.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.rt.settings.bucket, Prefix=prefix)
        for page in pages:
            for o in page.get("Contents", []):
                pack_id = o["Key"][len(prefix):]
                if pack_id not in self.packs:
                    self.packs[pack_id] = self.body(o["Key"])

    # -- reading the whole state -------------------------------------------------------
    def snapshot(self) -> Snapshot:
        from chalicelib.adapters.meta import ddb_plain

        rt = self.rt
        items = [ddb_plain(it) for page in rt.dynamodb.get_paginator("scan").paginate(
            TableName=rt.settings.table, ConsistentRead=True) for it in page["Items"]]
        etags = {o["Key"]: o["ETag"] for page in rt.s3.get_paginator("list_objects_v2")
                 .paginate(Bucket=rt.settings.bucket) for o in page.get("Contents", [])}
        return Snapshot(items, etags)

    def body(self, key: str) -> bytes:
        got: bytes = self.rt.s3.get_object(Bucket=self.rt.settings.bucket,
                                           Key=key)["Body"].read()
        return got
