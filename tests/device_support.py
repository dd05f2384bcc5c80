"""The device routes driven through every documented answer (the OpenAPI
walk in tests/unit/test_openapi.py), kept beside push_support and
billing_support so that test stays one idea."""
from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from chalicelib import api
from chalicelib.core import tokens
from chalicelib.core.ids import new_id
from chalicelib.core.signatures import Device as Device_
from local import apiclient
from tests.harness import BatchItem, Device, Harness


def forge(dev: Device) -> Device:
    """The same claims, signed with a key that is not the server's."""
    token = tokens.issue(b"not the server key" * 2, dev.user_id, dev.device_id,
                         int(time.time()), 3600)
    return Device(dev.user_id, dev.device_id, token, dev.auth_key)


def upload_body(file_id: str, base: int, size: int = 8, chunks: int = 0) -> dict[str, Any]:
    return {"file_id": file_id, "base_revision": base, "manifest_size": size,
            "chunks": [{"id": secrets.token_hex(32), "size": 1} for _ in range(chunks)]}


def drive_device_routes(h: Harness, dev: Device, monkeypatch: pytest.MonkeyPatch) -> None:
    """Enrolment's refusals, the device list, revocation, and the 403 a
    device enrolled before device keys gets for any write."""
    base = {"user_id": dev.user_id, "auth_key": dev.auth_key}
    taken = apiclient.enrolment(dev.user_id, dev.account_seed, secrets.token_bytes(32),
                                dev.device_id)
    assert h.post("/v1/devices", {**base, **taken}).status_code == 409
    wrong = apiclient.enrolment(dev.user_id, secrets.token_bytes(32), secrets.token_bytes(32))
    assert h.post("/v1/devices", {**base, **wrong}).status_code == 401
    monkeypatch.setattr(api, "MAX_DEVICES", 2)
    more = apiclient.enrolment(dev.user_id, dev.account_seed, secrets.token_bytes(32))
    assert h.post("/v1/devices", {**base, **more}).status_code == 403
    monkeypatch.undo()
    assert h.get("/v1/devices", dev).status_code == 200
    assert h.get("/v1/devices", forge(dev)).status_code == 401
    spare = h.add_device(dev.user_id, dev.auth_key, dev.account_seed)
    path = f"/v1/devices/{spare.device_id}"
    assert h.delete(path, dev).status_code == 400
    assert h.delete(f"{path}?signature={'ab' * 64}", dev).status_code == 403
    assert h.delete(f"{path}?signature={apiclient.sign_revoke(dev, spare.device_id)}",
                    forge(dev)).status_code == 401
    gone = new_id()
    assert h.delete(f"/v1/devices/{gone}?signature={apiclient.sign_revoke(dev, gone)}",
                    dev).status_code == 404
    assert h.delete(f"{path}?signature={apiclient.sign_revoke(dev, spare.device_id)}",
                    dev).status_code == 200
    old = new_id()  # enrolled before device keys: it may read, never write
    h.rt.devices.register(dev.user_id, Device_(old, None, None, int(time.time())))
    legacy = Device(dev.user_id, old, tokens.issue(h.rt.settings.token_secret, dev.user_id,
                                                   old, int(time.time()), 3600), dev.auth_key)
    assert h.post("/v1/uploads", upload_body(new_id(), 0), legacy).status_code == 403
    assert h.post("/v1/batches", {"entries": [BatchItem(new_id(), 0).body()]},
                  legacy).status_code == 403
    assert h.delete(f"/v1/files/{new_id()}?base_revision=1", legacy).status_code == 403
