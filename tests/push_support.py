"""Drive the push routes to every status chalicelib/openapi.json documents
for them (called from tests/unit/test_openapi.py, which checks each answer
against the document)."""
from __future__ import annotations

import dataclasses

import boto3

from tests.harness import Device, Harness


def drive_push_routes(h: Harness, dev: Device, forged: Device, too_big: int) -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    arn = sns.create_platform_application(Name="sealsync-openapi", Platform="APNS",
                                          Attributes={})["PlatformApplicationArn"]
    h.rt.settings = dataclasses.replace(h.rt.settings, push_apps={"apns": arn})
    h.rt.__dict__.pop("mobile", None)
    assert h.get("/v1/push", dev).status_code == 200
    assert h.get("/v1/push", forged).status_code == 401
    good = {"platform": "apns", "token": "ab" * 32}
    assert h.post("/v1/push/registrations", good, dev).status_code == 201
    assert h.post("/v1/push/registrations", {"platform": "fcm", "token": "ab" * 32},
                  dev).status_code == 400  # not configured here
    assert h.post("/v1/push/registrations", {**good, "extra": 1}, dev).status_code == 400
    assert h.post("/v1/push/registrations", " " * too_big, dev).status_code == 413
    assert h.post("/v1/push/registrations", good, forged).status_code == 401
    assert h.post("/v1/push/registrations", good, h.signup()).status_code == 409  # not theirs
    assert h.post("/v1/push/tickets", {}, dev).status_code == 201
    assert h.post("/v1/push/tickets", {}, forged).status_code == 401
    assert h.delete("/v1/push/registrations", dev).status_code == 200
    assert h.delete("/v1/push/registrations", forged).status_code == 401
