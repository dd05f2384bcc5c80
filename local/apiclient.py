"""A bare protocol client over HTTP for the local stack: no crypto, no sync
engine. The e2e tests and the benchmarks speak the wire protocol with it;
the real client library lives in clients/.

Blobs here are opaque bytes standing in for ciphertext, and a chunk id is
SHA-256 of the blob, standing in for the client's per-user keyed hash.
Each device does hold real Ed25519 keys (an account key and its own), since
the server checks the device signature of every version it commits
(chalicelib/core/signatures.py): `sign_entry` makes one.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    account_seed: bytes = field(default=b"", repr=False)  # the account's Ed25519 seed
    device_seed: bytes = field(default=b"", repr=False)  # this device's Ed25519 seed

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def _sign(seed: bytes, message: bytes) -> str:
    import nacl.signing

    return bytes(nacl.signing.SigningKey(seed).sign(message).signature).hex()


def public_key(seed: bytes) -> str:
    import nacl.signing

    return bytes(nacl.signing.SigningKey(seed).verify_key).hex()


def enrolment(user_id: str, account_seed: bytes, device_seed: bytes,
              device_id: str | None = None) -> dict[str, str]:
    """The fields of POST /v1/devices that register a device's key, vouched
    for by the account key (and the account key itself, set once)."""
    from chalicelib.core.signatures import device_message

    device_id = device_id or secrets.token_hex(16)
    key = bytes.fromhex(public_key(device_seed))
    return {"device_id": device_id, "device_key": key.hex(),
            "device_sig": _sign(account_seed, device_message(user_id, device_id, key)),
            "signing_key": public_key(account_seed)}


def sign_entry(dev: Device, file_id: str, base: int, manifest: bytes,
               chunk_ids: Sequence[str] = (), tombstone: bool = False) -> str:
    """The device's signature of one version, as the commit checks it."""
    from chalicelib.core.signatures import Signed, entry_message

    signed = Signed(file_id, base, tombstone, len(manifest), tuple(chunk_ids))
    return _sign(dev.device_seed, entry_message(dev.user_id, signed,
                                                hashlib.sha256(manifest).digest()))


def bundle(dev: Device, versions: Sequence[tuple[str, int, bytes, Sequence[bytes]]]) -> bytes:
    """A batch's bundle: the manifests in entry order, then `dev`'s
    signature of each entry (FORMAT.md §13)."""
    return b"".join(m for _, _, m, _ in versions) + b"".join(
        bytes.fromhex(sign_entry(dev, f, base, m, [chunk_id(c) for c in chunks]))
        for f, base, m, chunks in versions)


def sign_revoke(dev: Device, device_id: str) -> str:
    """The account key's signature revoking `device_id` (DELETE /v1/devices/{id})."""
    from chalicelib.core.signatures import revoke_message

    return _sign(dev.account_seed, revoke_message(dev.user_id, device_id))


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
        self.account_seeds: dict[str, bytes] = {}  # user -> the account key's seed
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
        auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
        user = self.call("POST", "/v1/accounts", body={
            "auth_key": auth_key, "kdf": kdf, "signing_key": public_key(account_seed)},
            expect=201)
        self.account_seeds[user["user_id"]] = account_seed
        return self.add_device(user["user_id"], auth_key, account_seed)

    def add_device(self, user_id: str, auth_key: str,
                   account_seed: bytes | None = None) -> Device:
        """Enrol a device, vouched for by the account key (the one `signup`
        made for `user_id` unless given)."""
        # an account made without a signing key registers one now (trust on first use)
        account_seed = account_seed or self.account_seeds.setdefault(
            user_id, secrets.token_bytes(32))
        seed = secrets.token_bytes(32)
        b = self.call("POST", "/v1/devices", body={
            "user_id": user_id, "auth_key": auth_key,
            **enrolment(user_id, account_seed, seed)}, expect=201)
        return Device(b["user_id"], b["device_id"], b["token"], auth_key, account_seed, seed)

    # -- uploads --------------------------------------------------------------
    def create_upload(self, dev: Device, file_id: str, base: int, manifest: bytes,
                      chunks: Sequence[bytes] = ()) -> dict[str, Any]:
        ids = [chunk_id(c) for c in chunks]
        return self.call("POST", "/v1/uploads", dev, {
            "file_id": file_id, "base_revision": base, "manifest_size": len(manifest),
            "chunks": [{"id": i, "size": len(c)} for i, c in zip(ids, chunks, strict=True)],
            "signature": sign_entry(dev, file_id, base, manifest, ids),
            "manifest_sha256": hashlib.sha256(manifest).hexdigest()}, expect=201)

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
        ticket = self.create_upload(dev, file_id, base, manifest, chunks)
        self.put_chunks(ticket, chunks)
        self.put_blob(ticket["manifest_url"], manifest, ticket.get("manifest_headers"))
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
                     entries: Sequence[tuple[str, int, int, Sequence[bytes]]],
                     bundle: bytes | None = None) -> dict[str, Any]:
        """POST /v1/batches; each entry is (file id, base, manifest size,
        chunks). With the `bundle`, its digest is bound into the bundle's
        PUT URL (send the answer's bundle_headers)."""
        body: dict[str, Any] = {"entries": [
            {"file_id": f, "base_revision": base, "manifest_size": size,
             "chunks": [{"id": chunk_id(c), "size": len(c)} for c in chunks]}
            for f, base, size, chunks in entries]}
        if bundle is not None:
            body["bundle_sha256"] = hashlib.sha256(bundle).hexdigest()
        return self.call("POST", "/v1/batches", dev, body, expect=201)

    def send_batch(self, dev: Device,
                   versions: Sequence[tuple[str, int, bytes, Sequence[bytes]]]) -> str:
        """Presign a batch, PUT the chunks it asks for, then the bundle (the
        manifests concatenated, then the device's signature of each entry,
        FORMAT.md §13; its arrival triggers the commit); its id. Each version
        is (file id, base, manifest, chunks)."""
        whole = bundle(dev, versions)
        ticket = self.create_batch(dev, [(f, base, len(m), chunks)
                                         for f, base, m, chunks in versions], whole)
        self.put_chunks(ticket, [c for _, _, _, chunks in versions for c in chunks])
        self.put_blob(ticket["bundle_url"], whole, ticket.get("bundle_headers"))
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
        signature = sign_entry(dev, file_id, base, b"", tombstone=True)
        return self.call("DELETE", f"/v1/files/{file_id}?base_revision={base}"
                         f"&signature={signature}", dev, expect=202)

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
