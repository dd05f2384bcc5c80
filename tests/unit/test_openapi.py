"""chalicelib/openapi.json stays true: the same routes as app.py, the same
bounds as `Limits`, and every response a real call gets (success or error)
is one the document promises, with a body its schema accepts. How the
document is read, and the client that checks every answer against it, are
in tests/openapi_support.py; the schemas' strictness is test_openapi_schemas.py."""
from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi

from app import app
from chalicelib.adapters.pairings import ID_ALPHABET as PAIRING_ALPHABET
from chalicelib.adapters.pairings import ID_LEN as PAIRING_ID_LEN
from chalicelib.core.ids import CHUNK_HEX, ID_HEX, new_id
from chalicelib.core.ratelimit import Rates, Rule
from chalicelib.core.requests import Limits
from chalicelib.jobs import run_job
from local import apiclient
from local.stripe import LocalStripe
from tests.billing_support import drive_billing_routes, enable_billing
from tests.device_support import drive_device_routes, forge, upload_body
from tests.harness import BatchItem, Harness, chunk_id
from tests.openapi_support import (
    DOC,
    CheckedHTTP,
    operations,
    param,
    region_statuses,
    resolve,
)
from tests.pairing_support import drive_pairing_routes
from tests.push_support import drive_push_routes

LIMITS = Limits()


# -- the document itself ---------------------------------------------------
def test_document_is_valid_openapi_3_1() -> None:
    validate_openapi(DOC)
    assert DOC["openapi"].startswith("3.1.")
    for schema in DOC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_paths_and_methods_equal_the_apps_routes() -> None:
    documented = {(path, method) for path, method, _ in operations()}
    routed = {(path, method.lower()) for path, entries in app.routes.items()
              for method in entries}
    assert documented == routed


def test_public_routes_and_path_parameters_match_the_app() -> None:
    assert DOC["security"] == [{"bearer": []}]
    scheme = DOC["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, method, op in operations():
        entry = app.routes[path][method.upper()]
        public = entry.authorizer is None
        assert (op.get("security") == []) is public, (path, method)
        assert ("401" in op["responses"]) is (not public or path in ("/v1/devices",
                                                                     "/v1/tokens"))
        params = [resolve(p) for p in op.get("parameters", [])]
        assert sorted(p["name"] for p in params if p["in"] == "path") == sorted(entry.view_args)
        for p in params:
            if p["in"] == "path":  # ids are 32 hex; a pairing id is typed by a person
                want = (f"^[{PAIRING_ALPHABET}]{{{PAIRING_ID_LEN}}}$"
                        if p["name"] == "pairing_id" else f"^[0-9a-f]{{{ID_HEX}}}$")
                assert p["required"] and p["schema"]["pattern"] == want
        for status in op["responses"]:
            assert re.fullmatch(r"[1-5]\d\d", status), (path, method, status)
        assert "415" in op["responses"] and "500" in op["responses"]



def test_bounds_are_the_limits() -> None:
    schemas = DOC["components"]["schemas"]
    upload = schemas["CreateUpload"]["properties"]
    assert upload["manifest_size"]["maximum"] == LIMITS.max_manifest_bytes
    assert upload["chunks"]["maxItems"] == LIMITS.max_chunks
    assert upload["chunks"]["items"]["properties"]["size"]["maximum"] == LIMITS.max_chunk_bytes
    assert upload["chunks"]["items"]["properties"]["id"]["pattern"] == (
        f"^[0-9a-f]{{{CHUNK_HEX}}}$")
    assert schemas["CreateAccount"]["properties"]["kdf"]["maxLength"] == LIMITS.max_kdf_bytes
    for path in ("/v1/uploads/{upload_id}", "/v1/changes", "/v1/batches/{batch_id}"):
        assert param(path, "get", "wait")["schema"]["maximum"] == LIMITS.max_wait_s
    entries = schemas["CreateBatch"]["properties"]["entries"]
    assert entries["maxItems"] == LIMITS.max_batch_entries
    assert schemas["BatchEntry"]["properties"]["chunks"]["maxItems"] == LIMITS.max_chunks
    assert schemas["Batch"]["properties"]["entries"]["maxItems"] == LIMITS.max_batch_entries
    too = resolve(DOC["paths"]["/v1/batches"]["post"]["responses"]["413"])["description"]
    for bound in (LIMITS.max_batch_body_bytes, LIMITS.max_batch_entries,
                  LIMITS.max_batch_chunks, LIMITS.max_bundle_bytes):
        assert str(bound) in too and str(bound) in entries["description"] + too
    for path in ("/v1/changes", "/v1/files/{file_id}/revisions"):
        assert param(path, "get", "limit")["schema"]["maximum"] == LIMITS.max_page
    assert str(LIMITS.max_body_bytes) in resolve(
        DOC["paths"]["/v1/uploads"]["post"]["responses"]["413"])["description"]


# -- the document against real calls ----------------------------------------
def test_served_without_auth(checked: tuple[Harness, CheckedHTTP]) -> None:
    _, http = checked
    r = http.get("/v1/openapi.json")
    assert r.status_code == 200 and json.loads(r.body) == DOC


def test_every_documented_status_is_real_and_valid(
        checked: tuple[Harness, CheckedHTTP], monkeypatch: pytest.MonkeyPatch,
        localstripe: LocalStripe) -> None:
    """Drive every route to every status it documents (but 500); each response
    is validated by CheckedHTTP, and a status the document lacks fails."""
    h, http = checked
    secret = enable_billing(h, localstripe)
    # accounts, devices, tokens
    dev = h.signup()
    h.post("/v1/accounts", {"auth_key": "not hex"})
    h.post("/v1/accounts", "x" * (LIMITS.max_body_bytes + 1))
    http.get(f"/v1/accounts/{dev.user_id}/kdf")
    http.get("/v1/accounts/NOT-AN-ID/kdf")
    http.get(f"/v1/accounts/{new_id()}/kdf")
    enrol = apiclient.enrolment(dev.user_id, dev.account_seed, secrets.token_bytes(32))
    for path, extra in (("/v1/devices", enrol), ("/v1/tokens", {"device_id": dev.device_id})):
        good = {"user_id": dev.user_id, "auth_key": dev.auth_key, **extra}
        assert h.post(path, good).status_code == 201
        assert h.post(path, {**good, "user_id": 7}).status_code == 400
        assert h.post(path, {**good, "auth_key": secrets.token_hex(32)}).status_code == 401
        assert h.post(path, " " * (LIMITS.max_body_bytes + 1)).status_code == 413
    assert h.post("/v1/tokens", {"user_id": dev.user_id, "auth_key": dev.auth_key,
                                 "device_id": new_id()}).status_code == 401
    drive_device_routes(h, dev, monkeypatch)
    saved, one = h.rt.settings, 1 / 10**6  # one request per bucket, then 429
    h.rt.settings = replace(saved, rates=Rates(
        signup_ip=Rule("t-signup", 1, one), devices_ip=Rule("t-devices", 1, one),
        tokens_ip=Rule("t-tokens", 1, one)))
    for path, body in (("/v1/accounts", {"auth_key": secrets.token_hex(32), "kdf": "k"}),
                       ("/v1/devices", {"user_id": dev.user_id, "auth_key": dev.auth_key}),
                       ("/v1/tokens", {"user_id": dev.user_id, "auth_key": dev.auth_key,
                                       "device_id": dev.device_id})):
        h.post(path, body)
        assert h.post(path, body).status_code == 429
    h.rt.settings = saved

    # uploads: accepted, pending, conflict, rejected
    file_id = new_id()
    first = h.stage(dev, file_id, 0, b"manifest", (b"chunk one", b"chunk two"))
    assert h.commit(first.key).single.status == "accepted"
    assert h.status(dev, first.upload_id)["revision"] == 1
    loser = h.stage(dev, file_id, 0)
    assert h.commit(loser.key).single.status == "conflict"
    assert h.status(dev, loser.upload_id)["winner_revision"] == 1
    broken = h.stage(dev, new_id(), 0, chunks=(b"never sent",), upload_chunks=False)
    assert h.commit(broken.key).single.status == "rejected"
    assert "never uploaded" in h.status(dev, broken.upload_id)["reason"]
    pending = h.stage(dev, new_id(), 0)
    assert h.status(dev, pending.upload_id)["status"] == "pending"
    assert h.post("/v1/uploads", {**upload_body(file_id, 1), "name": "x"}, dev
                  ).status_code == 400
    assert h.post("/v1/uploads", upload_body(file_id, 1, chunks=LIMITS.max_chunks + 1), dev
                  ).status_code == 413
    assert http.post("/v1/uploads", headers={"content-type": "application/json"},
                     body=json.dumps(upload_body(file_id, 1))).status_code == 401
    forged = forge(dev)
    assert h.post("/v1/uploads", upload_body(file_id, 1), forged).status_code == 401
    assert h.get(f"/v1/uploads/{first.upload_id}?wait=abc", dev).status_code == 400
    assert h.get(f"/v1/uploads/{new_id()}", dev).status_code == 404
    assert h.get(f"/v1/uploads/{first.upload_id}", forged).status_code == 401

    # batches: created, pending, finished with every kind of verdict
    batch = h.stage_batch(dev, [BatchItem(file_id, 0), BatchItem(new_id(), 0),
                                BatchItem(new_id(), 0, chunks=(b"never",))],
                          upload_chunks=False)
    assert h.batch(dev, batch.batch_id)["status"] == "pending"
    assert h.commit(batch.key).status == "finished"
    verdicts = h.batch(dev, batch.batch_id)["entries"]
    assert [v["status"] for v in verdicts] == ["conflict", "accepted", "rejected"]
    assert h.post("/v1/batches", {"entries": [upload_body(file_id, 1)] * 2}, dev
                  ).status_code == 400
    assert h.post("/v1/batches", {"entries": [upload_body(new_id(), 0)
                                              for _ in range(LIMITS.max_batch_entries + 1)]},
                  dev).status_code == 413
    assert h.post("/v1/batches", "x" * (LIMITS.max_batch_body_bytes + 1), dev
                  ).status_code == 413
    assert h.post("/v1/batches", {"entries": [upload_body(file_id, 1)]}, forged
                  ).status_code == 401
    assert h.get(f"/v1/batches/{batch.batch_id}?wait=-1", dev).status_code == 400
    assert h.get(f"/v1/batches/{new_id()}", dev).status_code == 404
    assert h.get(f"/v1/batches/{batch.batch_id}", forged).status_code == 401
    with pytest.raises(AssertionError):  # another user's batch does not exist for them
        h.batch(h.signup(), batch.batch_id)

    # packs: a batch that declares one, its answer, a version read from it
    from tests.unit.test_pack_pipeline import make_pack
    blob = secrets.token_bytes(100)
    pid, data, decl = make_pack([blob])
    item = BatchItem(new_id(), 0, chunks=(blob,))
    packed = h.post("/v1/batches", {"entries": [item.body()], "packs": [decl]}, dev)
    assert packed.status_code == 201 and pid in packed.json_body["pack_urls"]
    packed_id = packed.json_body["batch_id"]
    h.rt.blobs.put(f"packs/{dev.user_id}/{pid}", data)
    h.rt.blobs.put(f"staging/{dev.user_id}/{packed_id}", item.manifest + item.signature(dev))
    assert h.commit(f"staging/{dev.user_id}/{packed_id}").status == "finished"
    packed_file = h.batch(dev, packed_id)["entries"][0]
    assert packed_file["status"] == "accepted"
    assert "packs" in h.head(dev, packed_file["file_id"])  # type: ignore[operator]
    assert h.post("/v1/chunks/missing", {"chunks": [chunk_id(blob)]}, dev
                  ).json_body == {"missing": []}
    assert h.post("/v1/chunks/missing", {"chunks": [7]}, dev).status_code == 400
    assert h.post("/v1/chunks/missing", {"chunks": ["a" * 64] * 8193}, dev
                  ).status_code == 413
    assert h.post("/v1/chunks/missing", {"chunks": []}, forged).status_code == 401

    # the feed
    assert h.changes(dev)["cursor"] == 3
    assert h.get("/v1/changes?limit=0", dev).status_code == 400
    assert h.get("/v1/changes?cursor=99", dev).status_code == 409
    assert h.get("/v1/changes", forged).status_code == 401

    # files: live head, a past revision, a deleted head, revisions
    head = h.head(dev, file_id)
    assert head and [c["id"] for c in head["chunks"]] == [chunk_id(b"chunk one"),
                                                          chunk_id(b"chunk two")]
    assert h.get(f"/v1/files/{file_id}?revision=1", dev).status_code == 200
    assert h.get(f"/v1/files/{file_id}?revision=2", dev).status_code == 404
    assert h.get("/v1/files/not-an-id", dev).status_code == 400
    assert h.get(f"/v1/files/{file_id}", forged).status_code == 401
    assert h.delete(f"/v1/files/{file_id}", dev).status_code == 400
    assert h.delete(f"/v1/files/{file_id}?base_revision=1", forged).status_code == 401
    r = h.delete_file(dev, file_id, 1)
    assert r.status_code == 202
    assert h.commit(f"staging/{dev.user_id}/{r.json_body['upload_id']}").single.status == "accepted"
    gone = h.head(dev, file_id)
    assert gone and gone["deleted"] and "manifest_url" not in gone
    assert "manifest_range" not in gone
    revs = h.get(f"/v1/files/{file_id}/revisions", dev)
    assert [v["revision"] for v in revs.json_body["revisions"]] == [2, 1]
    assert "expires_at" in revs.json_body["revisions"][1]
    # the delete's window passes: revision 1 expires (docs/DESIGN.md "Retention rule")
    run_job(h.rt, {"job": "retention"}, int(time.time()) + 31 * 24 * 3600)
    assert h.get(f"/v1/files/{file_id}?revision=1", dev).status_code == 410
    revs = h.get(f"/v1/files/{file_id}/revisions", dev)
    assert "expired_at" in revs.json_body["revisions"][1]
    done = h.get(f"/v1/files/{verdicts[1]['file_id']}", dev).json_body
    assert done["manifest_range"] == {"offset": 24, "length": 24}
    assert h.get(f"/v1/files/{file_id}/revisions?limit=abc", dev).status_code == 400
    assert h.get(f"/v1/files/{new_id()}/revisions", dev).status_code == 404
    assert h.get(f"/v1/files/{file_id}/revisions", forged).status_code == 401

    # the account's usage (docs/ACCOUNT.md)
    assert h.get("/v1/account/usage", dev).json_body["versions"] == 4  # with the packed one
    assert h.get("/v1/account/usage?from=abc", dev).status_code == 400
    assert h.get("/v1/account/usage", forged).status_code == 401

    # billing (docs/ACCOUNT.md): a read-only account's writes are 402
    drive_billing_routes(h, http, dev, forged, file_id, secret, localstripe)

    # push (docs/PUSH.md)
    drive_push_routes(h, dev, forged, LIMITS.max_body_bytes + 1)
    drive_pairing_routes(h, dev, forged, LIMITS.max_body_bytes + 1)

    # any route, sent something other than JSON
    plain = {**dev.headers, "content-type": "text/plain"}
    for path, method, _ in operations():
        concrete = re.sub(r"\{[^/]+\}", file_id, path)
        assert http.request(method.upper(), concrete, headers=plain,
                            body=b"{}").status_code == 415

    http.get("/v1/openapi.json")
    documented = {(path, method, status) for path, method, op in operations()
                  for status in op["responses"] if status != "500"} - region_statuses()
    assert documented - http.seen == set(), "documented but never produced"
    assert http.seen - documented == set()


def test_a_dependency_failure_is_the_documented_500(
        checked: tuple[Harness, CheckedHTTP]) -> None:
    h, http = checked
    dev = h.signup()

    class BrokenStore:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any, **kwargs: Any) -> Any:
                raise ClientError({"Error": {"Code": "InternalServerError",
                                             "Message": "secret detail"}}, name)
            return fail

    h.rt.__dict__["meta"] = BrokenStore()
    r = h.get("/v1/changes", dev)
    assert r.status_code == 500 and b"secret detail" not in r.body
    assert ("/v1/changes", "get", "500") in http.seen


@pytest.mark.parametrize(("path", "method", "name"), [
    (path, method, resolve(p)["name"]) for path, method, op in operations()
    for p in op.get("parameters", []) if resolve(p)["in"] == "query"
    and "minimum" in resolve(p)["schema"]])
def test_query_bounds_are_the_servers(checked: tuple[Harness, CheckedHTTP], path: str,
                                      method: str, name: str) -> None:
    """The documented minimum and maximum pass validation; one beyond is a 400
    naming the parameter."""
    h, http = checked
    dev = h.signup()
    file_id = new_id()
    up = h.stage(dev, file_id, 0)
    h.commit(up.key)  # a committed upload and a non-empty feed: no long poll blocks
    batch = h.stage_batch(dev, [BatchItem(new_id(), 0)])
    h.commit(batch.key)  # a finished batch: no long poll blocks
    concrete = path.replace("{file_id}", file_id).replace("{upload_id}", up.upload_id) \
        .replace("{batch_id}", batch.batch_id)
    schema = param(path, method, name)["schema"]
    for value, ok in ((schema["minimum"], True), (schema["maximum"], True),
                      (schema["minimum"] - 1, False), (schema["maximum"] + 1, False)):
        if value < 0:
            value = "-1"
        r = http.request(method.upper(), f"{concrete}?{name}={value}", headers=dev.headers)
        if ok:
            assert r.status_code != 400, (name, value, r.body)
        else:
            assert r.status_code == 400 and name in r.json_body["message"], (value, r.body)


def test_push_and_pairing_routes_answer_as_documented(
        checked: tuple[Harness, CheckedHTTP]) -> None:
    """The push and pairing routes alone, each answer validated against the
    document (the full walk above covers them too, after everything else)."""
    h, http = checked
    dev = h.signup()
    drive_push_routes(h, dev, forge(dev), LIMITS.max_body_bytes + 1)
    drive_pairing_routes(h, dev, forge(dev), LIMITS.max_body_bytes + 1)
    wanted = {(p, m, s) for p, m, op in operations() for s in op["responses"]
              if (p.startswith("/v1/pairings") or p == "/v1/push/tickets")
              and s not in ("415", "500")} - region_statuses()
    assert wanted - http.seen == set()
