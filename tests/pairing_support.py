"""Drive the pairing routes to every status chalicelib/openapi.json documents
for them (called from tests/unit/test_openapi.py, which checks each answer)."""
from __future__ import annotations

import base64
import dataclasses

from chalicelib.core.ratelimit import Rule
from tests.harness import Device, Harness

MSG = {"msg": base64.b64encode(b"m" * 33).decode()}
BOX = {"box": base64.b64encode(b"b" * 64).decode()}


def drive_pairing_routes(h: Harness, dev: Device, forged: Device, too_big: int) -> None:
    made = h.post("/v1/pairings", MSG, dev)
    assert made.status_code == 201
    pid = made.json_body["pairing_id"]
    assert h.post("/v1/pairings", {"msg": "not base64!"}, dev).status_code == 400
    assert h.post("/v1/pairings", MSG, forged).status_code == 401
    assert h.post("/v1/pairings", " " * too_big, dev).status_code == 413
    assert h.get(f"/v1/pairings/{pid}", dev).json_body["msg"] is None
    assert h.get("/v1/pairings/not-an-id", dev).status_code == 400
    assert h.get("/v1/pairings/ABCDEFGH", dev).status_code == 404
    assert h.get(f"/v1/pairings/{pid}", h.signup()).status_code == 404  # not theirs
    assert h.get(f"/v1/pairings/{pid}", forged).status_code == 401
    assert h.post(f"/v1/pairings/{pid}/box", BOX, dev).status_code == 409  # nobody joined
    assert h.get(f"/v1/pairings/{pid}/box", None).json_body["box"] is None
    assert h.get("/v1/pairings/x/box", None).status_code == 400
    assert h.get("/v1/pairings/ABCDEFGH/box", None).status_code == 404
    assert h.post(f"/v1/pairings/{pid}/join", MSG, None).status_code == 200
    assert h.post(f"/v1/pairings/{pid}/join", MSG, None).status_code == 409  # spent
    assert h.post(f"/v1/pairings/{pid}/join", {"msg": 7}, None).status_code == 400
    assert h.post("/v1/pairings/ABCDEFGH/join", MSG, None).status_code == 404
    assert h.post(f"/v1/pairings/{pid}/join", " " * too_big, None).status_code == 413
    assert h.post(f"/v1/pairings/{pid}/box", {"box": ""}, dev).status_code == 400
    assert h.post(f"/v1/pairings/{pid}/box", BOX, forged).status_code == 401
    assert h.post(f"/v1/pairings/{pid}/box", " " * too_big, dev).status_code == 413
    assert h.post("/v1/pairings/ABCDEFGH/box", BOX, dev).status_code == 404
    assert h.post(f"/v1/pairings/{pid}/box", BOX, dev).status_code == 201
    assert h.get(f"/v1/pairings/{pid}/box", None).json_body["box"] == BOX["box"]
    saved = h.rt.settings
    h.rt.settings = dataclasses.replace(saved, rates=dataclasses.replace(
        saved.rates, pairing_ip=Rule("t-pairing", 1, 1e-6)))
    other = h.post("/v1/pairings", MSG, dev).json_body["pairing_id"]
    h.post(f"/v1/pairings/{other}/join", MSG, None)
    assert h.post(f"/v1/pairings/{other}/join", MSG, None).status_code == 429
    h.rt.settings = saved
