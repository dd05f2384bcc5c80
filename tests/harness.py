"""A small test harness over the real app: sign up devices, upload versions
and deliver their staging events, against whichever Runtime a fixture built
(moto in-process + fakeredis, or moto server + a real redis-server)."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any

from chalice.test import Client

from chalicelib.batch_commit import BatchOutcome, Fault, no_fault
from chalicelib.commit import commit_staging_object
from chalicelib.config import Runtime, Settings
from chalicelib.core.ids import chunk_key, staging_key
from local import apiclient

TEST_ENV = {
    "SEALSYNC_BUCKET": "sealsync-test",
    "SEALSYNC_TABLE": "sealsync-test",
    "SEALSYNC_REDIS_URL": "redis://127.0.0.1:1/0",
    "SEALSYNC_TOKEN_SECRET": "test-secret-" + "x" * 32,
    "SEALSYNC_RATE_SCALE": "1000",  # tests sign up many accounts from one address
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def settings(**overrides: str) -> Settings:
    env = {**TEST_ENV, **overrides}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        os.environ.setdefault(name, env[name])
    return Settings.from_env(env)


@dataclass(frozen=True)
class Device(apiclient.Device):
    """Chalice's test client needs the content type spelled out."""

    @property
    def headers(self) -> dict[str, str]:
        return {**super().headers, "content-type": "application/json"}


@dataclass
class Pending:
    """A v1 upload (a batch of one) whose manifest is in staging but not
    yet committed."""

    upload_id: str
    key: str
    file_id: str
    base: int


@dataclass
class PendingBatch:
    """A batch whose bundle is in staging (or not yet: `put_bundle`)."""

    batch_id: str
    key: str
    entries: list[BatchItem]
    ticket: dict[str, Any]
    signatures: bytes = b""  # the bundle's trailer: one device signature per entry

    @property
    def bundle(self) -> bytes:
        return b"".join(e.manifest for e in self.entries) + self.signatures


@dataclass
class BatchItem:
    """One entry as the test makes it."""

    file_id: str
    base: int
    manifest: bytes = b""
    chunks: tuple[bytes, ...] = ()
    tombstone: bool = False
    # `chunks` as sent, when it names ranges of the base ({base, count, size}):
    # the body then states chunks_sha256 of the full list (core/chunk_ranges.py)
    sent: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.manifest:
            self.manifest = secrets.token_bytes(24)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file_id": self.file_id, "base_revision": self.base,
                               "manifest_size": len(self.manifest),
                               "chunks": [{"id": chunk_id(c), "size": len(c)}
                                          for c in self.chunks]}
        if self.sent is not None:
            out["chunks"] = self.sent
            out["chunks_sha256"] = hashlib.sha256(
                b"".join(bytes.fromhex(chunk_id(c)) for c in self.chunks)).hexdigest()
        if self.tombstone:
            out["tombstone"] = True
        return out

    def signature(self, dev: Device) -> bytes:
        """`dev`'s signature of this entry, as the bundle's trailer carries it."""
        return bytes.fromhex(apiclient.sign_entry(dev, self.file_id, self.base, self.manifest,
                                                  [chunk_id(c) for c in self.chunks],
                                                  self.tombstone))


chunk_id = apiclient.chunk_id  # plain SHA-256 stands in for the client's keyed hash


class Harness:
    def __init__(self, rt: Runtime, client: Client) -> None:
        self.rt = rt
        self.http = client
        self.account_seeds: dict[str, bytes] = {}  # user -> the account key's seed

    # -- accounts ---------------------------------------------------------
    def signup(self) -> Device:
        auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
        r = self.post("/v1/accounts", {"auth_key": auth_key, "kdf": "test",
                                       "signing_key": apiclient.public_key(account_seed)})
        assert r.status_code == 201, r.body
        self.account_seeds[r.json_body["user_id"]] = account_seed
        return self.add_device(r.json_body["user_id"], auth_key, account_seed)

    def add_device(self, user_id: str, auth_key: str,
                   account_seed: bytes | None = None) -> Device:
        """Enrol a device with its own key, vouched for by the account key
        (the one `signup` made for `user_id` unless given)."""
        # an account made without a signing key registers one now (trust on first use)
        account_seed = account_seed or self.account_seeds.setdefault(
            user_id, secrets.token_bytes(32))
        seed = secrets.token_bytes(32)
        r = self.post("/v1/devices", {"user_id": user_id, "auth_key": auth_key,
                                      **apiclient.enrolment(user_id, account_seed, seed)})
        assert r.status_code == 201, r.body
        b = r.json_body
        return Device(b["user_id"], b["device_id"], b["token"], auth_key, account_seed, seed)

    # -- HTTP ---------------------------------------------------------------
    def post(self, path: str, body: Any, dev: Device | None = None) -> Any:
        headers = dev.headers if dev else {"content-type": "application/json"}
        raw = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.http.http.post(path, headers=headers, body=raw)

    def get(self, path: str, dev: Device | None) -> Any:
        return self.http.http.get(path, headers=dev.headers if dev else {})

    def delete(self, path: str, dev: Device) -> Any:
        return self.http.http.delete(path, headers=dev.headers)

    def delete_file(self, dev: Device, file_id: str, base: int) -> Any:
        """DELETE /v1/files/{id} with the device's signed tombstone."""
        signature = apiclient.sign_entry(dev, file_id, base, b"", tombstone=True)
        return self.delete(f"/v1/files/{file_id}?base_revision={base}&signature={signature}",
                           dev)

    # -- uploads --------------------------------------------------------------
    def stage(self, dev: Device, file_id: str, base: int, manifest: bytes | None = None,
              chunks: tuple[bytes, ...] = (), upload_chunks: bool = True) -> Pending:
        """POST /v1/uploads, then PUT the chunks it asked for and the manifest."""
        manifest = manifest if manifest is not None else secrets.token_bytes(64)
        body = {"file_id": file_id, "base_revision": base, "manifest_size": len(manifest),
                "chunks": [{"id": chunk_id(c), "size": len(c)} for c in chunks],
                "signature": apiclient.sign_entry(dev, file_id, base, manifest,
                                                  [chunk_id(c) for c in chunks])}
        r = self.post("/v1/uploads", body, dev)
        assert r.status_code == 201, r.body
        upload_id = r.json_body["upload_id"]
        s3, bucket = self.rt.s3, self.rt.settings.bucket
        if upload_chunks:
            for c in chunks:
                if chunk_id(c) in r.json_body["chunk_urls"]:
                    s3.put_object(Bucket=bucket, Key=chunk_key(dev.user_id, chunk_id(c)), Body=c)
        key = staging_key(dev.user_id, upload_id)
        s3.put_object(Bucket=bucket, Key=key, Body=manifest)
        return Pending(upload_id, key, file_id, base)

    def stage_batch(self, dev: Device, items: list[BatchItem], upload_chunks: bool = True,
                    bundle: bytes | None = None, put: bool = True) -> PendingBatch:
        """POST /v1/batches, PUT the chunks it asked for, then the bundle."""
        r = self.post("/v1/batches", {"entries": [i.body() for i in items]}, dev)
        assert r.status_code == 201, r.body
        ticket = dict(r.json_body)
        s3, bucket = self.rt.s3, self.rt.settings.bucket
        if upload_chunks:
            for c in {c for i in items for c in i.chunks}:
                if chunk_id(c) in ticket["chunk_urls"]:
                    s3.put_object(Bucket=bucket, Key=chunk_key(dev.user_id, chunk_id(c)), Body=c)
        batch = PendingBatch(ticket["batch_id"], staging_key(dev.user_id, ticket["batch_id"]),
                             items, ticket, b"".join(i.signature(dev) for i in items))
        if put:
            s3.put_object(Bucket=bucket, Key=batch.key,
                          Body=batch.bundle if bundle is None else bundle)
        return batch

    def batch(self, dev: Device, batch_id: str, wait: int = 0) -> dict[str, Any]:
        r = self.get(f"/v1/batches/{batch_id}?wait={wait}", dev)
        assert r.status_code == 200, r.body
        return dict(r.json_body)

    def manifest(self, dev: Device, file_id: str, revision: int | None = None) -> bytes:
        """The manifest bytes GET /v1/files/{id} points at (a range of a
        batch's bundle when it says so)."""
        query = f"?revision={revision}" if revision else ""
        r = self.get(f"/v1/files/{file_id}{query}", dev)
        assert r.status_code == 200, r.body
        head = r.json_body
        from urllib.parse import urlparse
        key = urlparse(head["manifest_url"]).path.split("/", 2)[2]
        data: bytes = self.rt.s3.get_object(Bucket=self.rt.settings.bucket,
                                            Key=key)["Body"].read()
        if "manifest_range" in head:
            at = head["manifest_range"]["offset"]
            return data[at:at + head["manifest_range"]["length"]]
        return data

    def commit(self, key: str, fault: Fault = no_fault) -> BatchOutcome:
        """Deliver the staging key's event; a v1 upload's verdict is `.single`."""
        return commit_staging_object(self.rt, key, fault)

    def status(self, dev: Device, upload_id: str, wait: int = 0) -> dict[str, Any]:
        r = self.get(f"/v1/uploads/{upload_id}?wait={wait}", dev)
        assert r.status_code == 200, r.body
        return dict(r.json_body)

    def head(self, dev: Device, file_id: str) -> dict[str, Any] | None:
        r = self.get(f"/v1/files/{file_id}", dev)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.body
        return dict(r.json_body)

    def changes(self, dev: Device, cursor: int = 0) -> dict[str, Any]:
        r = self.get(f"/v1/changes?cursor={cursor}&limit=1000", dev)
        assert r.status_code == 200, r.body
        return dict(r.json_body)
