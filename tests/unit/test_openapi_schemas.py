"""The request and response schemas of chalicelib/openapi.json are strict
and agree with both sides: what a request schema refuses the server refuses
(400), and what the test harness sends every request schema accepts.
(tests/unit/test_openapi.py holds the document to the app's routes, bounds
and answers.)"""
from __future__ import annotations

from typing import Any

import pytest

from local import apiclient
from tests.device_support import upload_body
from tests.harness import BatchItem, Harness
from tests.openapi_support import DOC, CheckedHTTP, resolve, validator


@pytest.mark.parametrize(("schema", "body"), [
    ("Upload", {"upload_id": "a" * 32, "file_id": "b" * 32, "status": "accepted",
                "base_revision": 0}),  # accepted without its revision
    ("Upload", {"upload_id": "a" * 32, "file_id": "b" * 32, "status": "rejected",
                "base_revision": 0}),  # rejected without a reason
    ("Upload", {"upload_id": "a" * 32, "file_id": "b" * 32, "status": "pending",
                "base_revision": 0, "revision": 1}),
    ("Version", {"file_id": "a" * 32, "revision": 1, "deleted": False, "size": 1,
                 "committed_at": 1, "device_id": "b" * 32}),  # live, but no URLs
    ("Error", {"error": "bad_request", "message": "x", "trace": "..."}),
    ("Token", {"user_id": "A" * 32, "device_id": "b" * 32, "token": "v1.a.b",
               "expires_at": 1}),
])
def test_schemas_are_strict(schema: str, body: dict[str, Any]) -> None:
    assert not validator({"$ref": f"#/components/schemas/{schema}"}).is_valid(body)


@pytest.mark.parametrize(("path", "schema", "body"), [
    ("/v1/accounts", "CreateAccount", {"auth_key": "ab" * 32, "kdf": "k" * 1025}),
    ("/v1/accounts", "CreateAccount", {"auth_key": "AB" * 32}),
    ("/v1/accounts", "CreateAccount", {"auth_key": "ab" * 32, "colour": "blue"}),
    ("/v1/devices", "AddDevice", {"auth_key": "<auth>"}),
    ("/v1/tokens", "NewToken", {"user_id": "<user>", "auth_key": "<auth>"}),
    ("/v1/tokens", "NewToken", {"user_id": "<user>", "auth_key": "<auth>",
                                "device_id": "<user>", "remember": True}),
    ("/v1/uploads", "CreateUpload", {**upload_body("a" * 32, 0), "base_revision": True}),
    ("/v1/uploads", "CreateUpload", {**upload_body("a" * 32, 0), "manifest_size": 0}),
    ("/v1/uploads", "CreateUpload", {**upload_body("a" * 32, 0), "manifest_size": 1.5}),
    ("/v1/uploads", "CreateUpload", {**upload_body("a" * 32, 0), "file_id": "../" * 11}),
    ("/v1/uploads", "CreateUpload", {**upload_body("a" * 32, 0),
                                     "chunks": [{"id": "c" * 64, "size": 0}]}),
    ("/v1/batches", "CreateBatch", {"entries": []}),
    ("/v1/batches", "CreateBatch", {"entries": [{**upload_body("a" * 32, 0),
                                                 "tombstone": 1}]}),
    ("/v1/batches", "CreateBatch", {"entries": [upload_body("a" * 32, 0)], "x": 1}),
    ("/v1/batches", "CreateBatch", {"entries": [{
        **upload_body("a" * 32, 1), "chunks_sha256": "ab" * 32,
        "chunks": [{"base": 0, "count": 0, "size": 1}]}]}),
    ("/v1/batches", "CreateBatch", {"entries": [{
        **upload_body("a" * 32, 1), "chunks_sha256": "ab" * 32,
        "chunks": [{"base": 0, "count": 1, "size": 1, "id": "c" * 64}]}]}),
    ("/v1/batches", "CreateBatch", {"entries": [{
        **upload_body("a" * 32, 1), "chunks_sha256": "AB" * 32,
        "chunks": [{"base": 0, "count": 1, "size": 1}]}]}),
])
def test_what_the_request_schema_refuses_the_server_refuses(
        checked: tuple[Harness, CheckedHTTP], path: str, schema: str,
        body: dict[str, Any]) -> None:
    h, _ = checked
    dev = h.signup()
    body = {k: {"<user>": dev.user_id, "<auth>": dev.auth_key}.get(v, v) if isinstance(v, str)
            else v for k, v in body.items()}
    op = DOC["paths"][path]["post"]
    assert resolve(op["requestBody"])["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{schema}"}
    assert not validator({"$ref": f"#/components/schemas/{schema}"}).is_valid(body)
    assert h.post(path, body, dev).status_code == 400


def test_what_the_harness_sends_the_request_schema_accepts() -> None:
    ok = {
        "CreateAccount": {"auth_key": "ab" * 32, "kdf": "test"},
        "AddDevice": {"user_id": "a" * 32, "auth_key": "ab" * 32, "name": "00ff",
                      **apiclient.enrolment("a" * 32, b"k" * 32, b"d" * 32)},
        "NewToken": {"user_id": "a" * 32, "auth_key": "ab" * 32, "device_id": "b" * 32},
        "CreateUpload": {"file_id": "a" * 32, "base_revision": 0, "manifest_size": 8,
                         "chunks": [{"id": "c" * 64, "size": 5}], "signature": "ab" * 64},
        "CreateBatch": {"entries": [BatchItem("a" * 32, 0, chunks=(b"x",)).body(),
                                    BatchItem("b" * 32, 2, tombstone=True).body(),
                                    BatchItem("c" * 32, 1, chunks=(b"x",), sent=[
                                        {"base": 0, "count": 1, "size": 1}]).body()]},
    }
    for name, body in ok.items():
        assert validator({"$ref": f"#/components/schemas/{name}"}).is_valid(body), name
