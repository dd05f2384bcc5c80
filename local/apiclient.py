"""A bare protocol client over HTTP for the local stack: no crypto, no sync
engine. The e2e tests and the benchmarks speak the wire protocol with it;
the real client library lives in clients/.

Blobs here are opaque bytes standing in for ciphertext, and a chunk id is
SHA-256 of the blob, standing in for the client's per-user keyed hash.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    """A response with a status the caller did not expect."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url} -> {status}: {body[:300]}")
        self.status = status
        self.body = body


def chunk_id(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def new_file_id() -> str:
    return secrets.token_hex(16)


def read_state(path: str | Path) -> dict[str, Any]:
    """The endpoints a running `make dev` wrote."""
    try:
        state: dict[str, Any] = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise SystemExit(f"{path} not found: start the stack first (make dev)") from exc
    return state


@dataclass(frozen=True)
class Device:
    user_id: str
    device_id: str
    token: str
    auth_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Staged:
    """An upload whose blobs are stored; the commit follows asynchronously."""

    upload_id: str
    file_id: str
    base_revision: int


class Client:
    def __init__(self, api: str, session: requests.Session | None = None,
                 timeout_s: float = TIMEOUT_S) -> None:
        self.api = api.rstrip("/")
        self.http = session or requests.Session()
        self.timeout_s = timeout_s

    # -- plumbing -----------------------------------------------------------
    def call(self, method: str, path: str, dev: Device | None = None,
             body: dict[str, Any] | None = None, expect: int = 200,
             timeout_s: float | None = None) -> dict[str, Any]:
        url = self.api + path
        headers = dict(dev.headers) if dev else {}
        data = None
        if body is not None:
            headers["content-type"] = "application/json"
            data = json.dumps(body)
        r = self.http.request(method, url, headers=headers, data=data,
                              timeout=timeout_s or self.timeout_s)
        if r.status_code != expect:
            raise ApiError(method, url, r.status_code, r.text)
        out: dict[str, Any] = r.json()
        return out

    def put_blob(self, url: str, blob: bytes, headers: dict[str, str] | None = None) -> int:
        """PUT to a presigned URL; returns the status (412: already stored)."""
        r = self.http.put(url, data=blob, headers=headers or {}, timeout=self.timeout_s)
        if r.status_code not in (200, 412):
            raise ApiError("PUT", url.split("?")[0], r.status_code, r.text)
        return r.status_code

    def get_blob(self, url: str) -> bytes:
        r = self.http.get(url, timeout=self.timeout_s)
        if r.status_code != 200:
            raise ApiError("GET", url.split("?")[0], r.status_code, r.text)
        return r.content

    # -- accounts -------------------------------------------------------------
    def signup(self, kdf: str = "argon2id$m=65536,t=3,p=1$test") -> Device:
        """A new account and its first device."""
        auth_key = secrets.token_hex(32)
        user = self.call("POST", "/v1/accounts", body={"auth_key": auth_key, "kdf": kdf},
                         expect=201)
        return self.add_device(user["user_id"], auth_key)

    def add_device(self, user_id: str, auth_key: str) -> Device:
        b = self.call("POST", "/v1/devices", body={"user_id": user_id, "auth_key": auth_key},
                      expect=201)
        return Device(b["user_id"], b["device_id"], b["token"], auth_key)

    # -- uploads --------------------------------------------------------------
    def create_upload(self, dev: Device, file_id: str, base: int, manifest_size: int,
                      chunks: Sequence[bytes] = ()) -> dict[str, Any]:
        return self.call("POST", "/v1/uploads", dev, {
            "file_id": file_id, "base_revision": base, "manifest_size": manifest_size,
            "chunks": [{"id": chunk_id(c), "size": len(c)} for c in chunks]}, expect=201)

    def put_chunks(self, ticket: dict[str, Any], chunks: Sequence[bytes]) -> None:
        """PUT the chunks the server asked for, with the create-only header."""
        urls: dict[str, str] = ticket["chunk_urls"]
        for c in chunks:
            url = urls.get(chunk_id(c))
            if url is not None:
                self.put_blob(url, c, ticket.get("chunk_headers"))

    def upload(self, dev: Device, file_id: str, base: int, manifest: bytes,
               chunks: Sequence[bytes] = ()) -> Staged:
        """Presign, PUT the chunks, then the manifest (whose arrival in
        staging triggers the commit)."""
        ticket = self.create_upload(dev, file_id, base, len(manifest), chunks)
        self.put_chunks(ticket, chunks)
        self.put_blob(ticket["manifest_url"], manifest)
        return Staged(ticket["upload_id"], file_id, base)

    def status(self, dev: Device, upload_id: str, wait: int = 0) -> dict[str, Any]:
        return self.call("GET", f"/v1/uploads/{upload_id}?wait={wait}", dev,
                         timeout_s=wait + self.timeout_s)

    def decided(self, dev: Device, upload_id: str,
                wait: int = 20) -> tuple[dict[str, Any], int]:
        """Long-poll until the upload is no longer pending: (result, polls)."""
        polls = 0
        while True:
            polls += 1
            got = self.status(dev, upload_id, wait)
            if got["status"] != "pending":
                return got, polls

    # -- batches (v2: what the desktop client sends) ---------------------------
    def create_batch(self, dev: Device,
                     entries: Sequence[tuple[str, int, int, Sequence[bytes]]]) -> dict[str, Any]:
        """POST /v1/batches; each entry is (file id, base, manifest size, chunks)."""
        return self.call("POST", "/v1/batches", dev, {"entries": [
            {"file_id": f, "base_revision": base, "manifest_size": size,
             "chunks": [{"id": chunk_id(c), "size": len(c)} for c in chunks]}
            for f, base, size, chunks in entries]}, expect=201)

    def send_batch(self, dev: Device,
                   versions: Sequence[tuple[str, int, bytes, Sequence[bytes]]]) -> str:
        """Presign a batch, PUT the chunks it asks for, then the bundle (the
        manifests concatenated, whose arrival triggers the commit); its id.
        Each version is (file id, base, manifest, chunks)."""
        ticket = self.create_batch(dev, [(f, base, len(m), chunks)
                                         for f, base, m, chunks in versions])
        self.put_chunks(ticket, [c for _, _, _, chunks in versions for c in chunks])
        self.put_blob(ticket["bundle_url"], b"".join(m for _, _, m, _ in versions))
        return str(ticket["batch_id"])

    def batch_status(self, dev: Device, batch_id: str, wait: int = 0) -> dict[str, Any]:
        return self.call("GET", f"/v1/batches/{batch_id}?wait={wait}", dev,
                         timeout_s=wait + self.timeout_s)

    def batch_decided(self, dev: Device, batch_id: str,
                      wait: int = 20) -> tuple[list[dict[str, Any]], int]:
        """Long-poll until the batch is finished: (each entry's verdict, polls)."""
        polls = 0
        while True:
            polls += 1
            got = self.batch_status(dev, batch_id, wait)
            if got["status"] == "finished":
                return list(got["entries"]), polls

    def delete(self, dev: Device, file_id: str, base: int) -> dict[str, Any]:
        return self.call("DELETE", f"/v1/files/{file_id}?base_revision={base}", dev,
                         expect=202)

    # -- reading --------------------------------------------------------------
    def changes(self, dev: Device, cursor: int = 0, wait: int = 0) -> dict[str, Any]:
        return self.call("GET", f"/v1/changes?cursor={cursor}&wait={wait}", dev,
                         timeout_s=wait + self.timeout_s)

    def get_file(self, dev: Device, file_id: str) -> dict[str, Any]:
        return self.call("GET", f"/v1/files/{file_id}", dev)

    def download(self, version: dict[str, Any]) -> tuple[bytes, list[bytes]]:
        """The manifest and the chunks of a version, by presigned GETs."""
        manifest = self.get_blob(version["manifest_url"])
        return manifest, [self.get_blob(c["url"]) for c in version.get("chunks", [])]
