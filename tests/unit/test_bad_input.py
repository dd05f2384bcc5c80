"""Bad input, through the real app: each gets a clear 4xx whose message names
the problem, or a `rejected` upload with a reason. Never a 5xx, never a
changed head, a changed feed or a stray upload record."""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core import tokens
from chalicelib.core.ids import new_id, staging_key
from chalicelib.core.requests import Limits
from tests.harness import Device, Harness, chunk_id

LIMITS = Limits()
MAX_INT = 2**53


@dataclass
class World:
    """Two users, each with one committed file, and what they look like."""

    h: Harness
    a: Device
    b: Device
    a_file: str
    b_file: str
    a_upload: str
    b_upload: str
    snapshot: dict[str, Any]

    def state(self) -> dict[str, Any]:
        scan = self.h.rt.dynamodb.scan(
            TableName=self.h.rt.settings.table, ProjectionExpression="pk",
            FilterExpression="begins_with(pk, :up)",
            ExpressionAttributeValues={":up": {"S": "UP#"}})
        return {
            "a_head": _stable(self.h.head(self.a, self.a_file)),
            "b_head": _stable(self.h.head(self.b, self.b_file)),
            "a_feed": self.h.changes(self.a)["changes"],
            "b_feed": self.h.changes(self.b)["changes"],
            "uploads": scan["Count"],
        }

    def assert_unchanged(self) -> None:
        """Nothing at all happened: no head, feed or upload record changed."""
        assert self.state() == self.snapshot

    def assert_heads_unchanged(self) -> None:
        """Uploads may have been recorded (and rejected), but no head or feed moved."""
        assert {**self.state(), "uploads": 0} == {**self.snapshot, "uploads": 0}


def _stable(head: dict[str, Any] | None) -> dict[str, Any] | None:
    """A head without its presigned URLs (they carry a fresh signature)."""
    if head is None:
        return None
    return {k: v for k, v in head.items() if k not in ("manifest_url", "chunks")} | {
        "chunks": [c["id"] for c in head.get("chunks", [])]}


@pytest.fixture
def world(fast: Harness) -> Iterator[World]:
    a, b = fast.signup(), fast.signup()
    a_file, b_file = new_id(), new_id()
    a_up = fast.stage(a, a_file, 0, b"a manifest", (b"a chunk",))
    assert fast.commit(a_up.key).status == "accepted"
    b_up = fast.stage(b, b_file, 0, b"b manifest", (b"b chunk",))
    assert fast.commit(b_up.key).status == "accepted"
    w = World(fast, a, b, a_file, b_file, a_up.upload_id, b_up.upload_id, {})
    w.snapshot = w.state()
    yield w


def expect(r: Any, status: int, error: str, *words: str) -> None:
    assert r.status_code == status, r.body
    body = json.loads(r.body)
    assert body["error"] == error, body
    for word in words:
        assert word in body["message"], (word, body["message"])


def upload(file_id: str, /, **change: Any) -> dict[str, Any]:
    """A good POST /v1/uploads body for a file at revision 1, then `change`."""
    body = {"file_id": file_id, "base_revision": 1, "manifest_size": 8,
            "chunks": [{"id": "c" * 64, "size": 5}]}
    return {**body, **change}


def each(cases: list[tuple[Any, ...]], check: Callable[..., None]) -> None:
    """Run `check` on every case against one world; report every failure."""
    failures = []
    for case in cases:
        try:
            check(*case)
        except AssertionError as exc:
            failures.append(f"{repr(case)[:120]}: {exc}")
    assert not failures, "\n".join(failures)


# -- request bodies -----------------------------------------------------------
NOT_JSON_OBJECTS = [
    ("{", ["not valid JSON"]),
    ('{"file_id": "' + "a" * 32 + '",}', ["not valid JSON"]),
    (b"\xff\xfe{}", ["not valid JSON"]),
    ("[" * 50_000 + "]" * 50_000, ["not valid JSON", "nested too deeply"]),
    ('{"x": ' + "[" * 50_000 + "]" * 50_000 + "}", ["nested too deeply"]),
    ("", ["JSON object body is required"]),
    ("[1, 2]", ["must be a JSON object"]),
    ('"a string"', ["must be a JSON object"]),
    ("42", ["must be a JSON object"]),
    ("null", ["must be a JSON object"]),
]


def test_body_that_is_not_a_json_object(world: World) -> None:
    def check(raw: str | bytes, words: list[str]) -> None:
        for path, dev in (("/v1/uploads", world.a), ("/v1/accounts", None),
                          ("/v1/devices", None), ("/v1/tokens", None)):
            expect(world.h.post(path, raw, dev), 400, "bad_request", *words)
        world.assert_unchanged()

    each(NOT_JSON_OBJECTS, check)


BAD_UPLOADS = [
    # wrong types
    ({"base_revision": True}, ["base_revision must be an integer"]),
    ({"base_revision": 1.0}, ["base_revision must be an integer"]),
    ({"base_revision": "1"}, ["base_revision must be an integer"]),
    ({"base_revision": None}, ["base_revision must be an integer"]),
    ({"manifest_size": False}, ["manifest_size must be an integer"]),
    ({"manifest_size": 8.5}, ["manifest_size must be an integer"]),
    ({"manifest_size": "8"}, ["manifest_size must be an integer"]),
    ({"file_id": 12345}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": ["a" * 32]}, ["file_id"]),
    ({"chunks": {"id": "c" * 64, "size": 5}}, ["chunks must be a list"]),
    ({"chunks": "c" * 64}, ["chunks must be a list"]),
    ({"chunks": ["c" * 64]}, ["each chunk must be an object"]),
    ({"chunks": [{"id": "c" * 64, "size": True}]}, ["chunk size must be an integer"]),
    ({"chunks": [{"id": "c" * 64, "size": 5.0}]}, ["chunk size must be an integer"]),
    ({"chunks": [{"id": "c" * 64}]}, ["chunk size must be an integer"]),
    ({"chunks": [{"id": 7, "size": 5}]}, ["chunk id must be 64 lowercase hex digits"]),
    # out of range
    ({"base_revision": -1}, ["base_revision must be between 0 and"]),
    ({"base_revision": MAX_INT + 1}, ["base_revision must be between 0 and"]),
    ({"manifest_size": 0}, ["manifest_size must be between 1 and"]),
    ({"manifest_size": -8}, ["manifest_size must be between 1 and"]),
    ({"manifest_size": LIMITS.max_manifest_bytes + 1},
     [f"manifest_size must be between 1 and {LIMITS.max_manifest_bytes}"]),
    ({"chunks": [{"id": "c" * 64, "size": 0}]}, ["chunk size must be between 1 and"]),
    ({"chunks": [{"id": "c" * 64, "size": LIMITS.max_chunk_bytes + 1}]},
     [f"chunk size must be between 1 and {LIMITS.max_chunk_bytes}"]),
    # bad ids
    ({"file_id": "A" * 32}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": "a" * 31}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": "a" * 33}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": "../../" + "a" * 26}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": "a" * 31 + "\n"}, ["file_id must be 32 lowercase hex digits"]),
    ({"file_id": ""}, ["file_id must be 32 lowercase hex digits"]),
    ({"chunks": [{"id": "C" * 64, "size": 5}]}, ["chunk id must be 64 lowercase hex digits"]),
    ({"chunks": [{"id": "c" * 63, "size": 5}]}, ["chunk id must be 64 lowercase hex digits"]),
    ({"chunks": [{"id": "../" + "c" * 61, "size": 5}]}, ["chunk id"]),
    # unknown fields (a name must never ride along in clear)
    ({"name": "secret.txt"}, ["unknown field(s): name"]),
    ({"user_id": "b" * 32}, ["unknown field(s): user_id"]),
]


def test_bad_upload_request(world: World) -> None:
    def check(change: dict[str, Any], words: list[str]) -> None:
        r = world.h.post("/v1/uploads", upload(world.a_file, **change), world.a)
        expect(r, 400, "bad_request", *words)
        world.assert_unchanged()

    each(BAD_UPLOADS, check)


def test_nan_infinity_and_endless_numbers(world: World) -> None:
    for literal, words in (("NaN", "manifest_size must be an integer"),
                           ("Infinity", "manifest_size must be an integer"),
                           ("-Infinity", "manifest_size must be an integer"),
                           ("1e999", "manifest_size must be an integer"),
                           ("9" * 5000, "not valid JSON")):
        raw = json.dumps(upload(world.a_file)).replace('"manifest_size": 8',
                                                       f'"manifest_size": {literal}')
        expect(world.h.post("/v1/uploads", raw, world.a), 400, "bad_request", words)
    world.assert_unchanged()


def test_too_many_chunks_and_huge_bodies_are_413(world: World) -> None:
    many = [{"id": secrets.token_hex(32), "size": 1} for _ in range(LIMITS.max_chunks + 1)]
    expect(world.h.post("/v1/uploads", upload(world.a_file, chunks=many), world.a),
           413, "too_large", f"at most {LIMITS.max_chunks} chunks")
    huge = json.dumps(upload(world.a_file, pad="x" * LIMITS.max_body_bytes))
    for path, dev in (("/v1/uploads", world.a), ("/v1/accounts", None),
                      ("/v1/devices", None), ("/v1/tokens", None)):
        expect(world.h.post(path, huge, dev), 413, "too_large",
               f"request body over {LIMITS.max_body_bytes} bytes")
    world.assert_unchanged()


def test_the_chunk_limit_itself_is_allowed(world: World) -> None:
    many = [{"id": secrets.token_hex(32), "size": 1} for _ in range(LIMITS.max_chunks)]
    r = world.h.post("/v1/uploads", upload(new_id(), base_revision=0, chunks=many), world.a)
    assert r.status_code == 201 and len(r.json_body["chunk_urls"]) == LIMITS.max_chunks


BAD_ACCOUNT_REQUESTS = [
    ("/v1/accounts", {"auth_key": "ab" * 32, "email": "me@example.com"},
     ["unknown field(s): email"]),
    ("/v1/accounts", {"auth_key": "AB" * 32}, ["auth_key must be 64 lowercase hex digits"]),
    ("/v1/accounts", {"auth_key": "ab" * 31}, ["auth_key must be 64 lowercase hex digits"]),
    ("/v1/accounts", {"auth_key": 7}, ["auth_key"]),
    ("/v1/accounts", {}, ["auth_key"]),
    ("/v1/accounts", {"auth_key": "ab" * 32, "kdf": 5}, ["kdf must be a string"]),
    ("/v1/accounts", {"auth_key": "ab" * 32, "kdf": "k" * (LIMITS.max_kdf_bytes + 1)},
     [f"at most {LIMITS.max_kdf_bytes} bytes"]),
    ("/v1/accounts", {"auth_key": "ab" * 32, "kdf": "é" * (LIMITS.max_kdf_bytes // 2 + 1)},
     [f"at most {LIMITS.max_kdf_bytes} bytes"]),
    ("/v1/accounts", {"auth_key": "ab" * 32, "kdf": "\ud800"}, ["kdf", "UTF-8"]),
    ("/v1/devices", {"user_id": "<a>", "auth_key": "<auth>", "device_name": "phone"},
     ["unknown field(s): device_name"]),
    ("/v1/devices", {"user_id": "<a>"}, ["auth_key must be 64 lowercase hex digits"]),
    ("/v1/devices", {"user_id": "../x", "auth_key": "<auth>"},
     ["user_id must be 32 lowercase hex digits"]),
    ("/v1/tokens", {"user_id": "<a>", "auth_key": "<auth>"},
     ["device_id must be 32 lowercase hex digits"]),
    ("/v1/tokens", {"user_id": "<a>", "auth_key": "<auth>", "device_id": "<a>", "ttl": 1},
     ["unknown field(s): ttl"]),
]


def test_bad_account_requests(world: World) -> None:
    def check(path: str, body: dict[str, Any], words: list[str]) -> None:
        fill = {"<a>": world.a.user_id, "<auth>": world.a.auth_key}
        body = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
        expect(world.h.post(path, body), 400, "bad_request", *words)
        world.assert_unchanged()

    each(BAD_ACCOUNT_REQUESTS, check)


def test_wrong_secrets_are_401(world: World) -> None:
    a, h = world.a, world.h
    other_key = secrets.token_hex(32)
    for path, body in (
            ("/v1/devices", {"user_id": a.user_id, "auth_key": other_key}),
            ("/v1/devices", {"user_id": new_id(), "auth_key": a.auth_key}),
            ("/v1/tokens", {"user_id": a.user_id, "auth_key": other_key,
                            "device_id": a.device_id}),
            # B's device under A's account
            ("/v1/tokens", {"user_id": a.user_id, "auth_key": a.auth_key,
                            "device_id": world.b.device_id})):
        r = h.post(path, body)
        expect(r, 401, "unauthorized")
        assert "auth_key" in r.json_body["message"] or "device" in r.json_body["message"]
        assert other_key not in r.json_body["message"]
    world.assert_unchanged()


# -- tokens -----------------------------------------------------------------
def _token_variants(dev: Device, secret: bytes) -> dict[str, str]:
    now = int(time.time())
    good = tokens.issue(secret, dev.user_id, dev.device_id, now, 3600)
    payload, mac = good.split(".")[1:]
    return {
        "empty": "Bearer ",
        "malformed": "Bearer not-a-token",
        "not bearer": f"Basic {good}",
        "wrong version": f"Bearer v2.{payload}.{mac}",
        "truncated": f"Bearer {good[:-10]}",
        "two parts": f"Bearer v1.{payload}",
        "oversized": "Bearer " + good + "A" * 600,
        "expired": "Bearer " + tokens.issue(secret, dev.user_id, dev.device_id,
                                            now - 7200, 3600),
        "forged": "Bearer " + tokens.issue(b"k" * 40, dev.user_id, dev.device_id, now, 3600),
        "forged for b": "Bearer " + tokens.issue(b"k" * 40, new_id(), new_id(), now, 3600),
    }


PROTECTED = [
    ("POST", "/v1/uploads"), ("GET", "/v1/uploads/{upload}"), ("GET", "/v1/changes"),
    ("GET", "/v1/files/{file}"), ("DELETE", "/v1/files/{file}?base_revision=1"),
    ("GET", "/v1/files/{file}/revisions"),
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_bad_tokens_are_401_on_every_protected_route(world: World, method: str,
                                                     path: str) -> None:
    h = world.h
    path = path.format(upload=world.b_upload, file=world.a_file)
    body = json.dumps(upload(world.a_file)) if method == "POST" else b""
    r = h.http.http.request(method, path, headers={"content-type": "application/json"},
                            body=body)
    assert r.status_code == 401 and json.loads(r.body) == {"message": "Unauthorized"}
    for what, header in _token_variants(world.a, h.rt.settings.token_secret).items():
        r = h.http.http.request(method, path, body=body, headers={
            "content-type": "application/json", "authorization": header})
        expect(r, 401, "unauthorized", "bearer token")
        secret = header.removeprefix("Bearer ")
        assert len(secret) < 8 or secret[:40] not in r.json_body["message"], what
    world.assert_unchanged()
    # the control: the caller's real token gets through
    assert h.http.http.request(method, path, body=body, headers=world.a.headers
                               ).status_code in (200, 201, 202, 404)


# -- isolation -------------------------------------------------------------------
def test_another_users_file_and_upload_are_404(world: World) -> None:
    h, a, b = world.h, world.a, world.b
    expect(h.get(f"/v1/files/{world.b_file}", a), 404, "not_found", "no such file")
    expect(h.get(f"/v1/files/{world.b_file}?revision=1", a), 404, "not_found")
    expect(h.get(f"/v1/files/{world.b_file}/revisions", a), 404, "not_found", "no such file")
    expect(h.get(f"/v1/uploads/{world.b_upload}", a), 404, "not_found", "no such upload")
    assert h.status(b, world.b_upload)["status"] == "accepted"  # it does exist, for B
    assert world.b_file not in json.dumps(h.changes(a))
    world.assert_unchanged()


def test_an_upload_on_another_users_file_id_stays_in_the_callers_namespace(
        world: World) -> None:
    h, a, b = world.h, world.a, world.b
    # A claims B's head as its base: A has no such file, so it is rejected.
    ahead = h.stage(a, world.b_file, 1, b"evil")
    out = h.commit(ahead.key)
    assert out.status == "rejected" and "ahead of the head (0)" in out.detail
    world.assert_heads_unchanged()
    # From base 0 it is a new file in A's namespace that merely shares the id.
    mine = h.stage(a, world.b_file, 0, b"mine")
    assert h.commit(mine.key).status == "accepted"
    a_copy = h.head(a, world.b_file)
    assert a_copy and a_copy["device_id"] == a.device_id and a_copy["revision"] == 1
    assert _stable(h.head(b, world.b_file)) == world.snapshot["b_head"]
    assert h.changes(b)["changes"] == world.snapshot["b_feed"]
    # A deleting "B's" file deletes only A's copy.
    r = h.delete(f"/v1/files/{world.b_file}?base_revision=1", a)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").status == "accepted"
    assert _stable(h.head(b, world.b_file)) == world.snapshot["b_head"]
    # Nothing A did wrote under B's prefixes.
    s3 = h.rt.s3.list_objects_v2(Bucket=h.rt.settings.bucket)
    b_keys = [o["Key"] for o in s3["Contents"] if b.user_id in o["Key"]]
    assert all(b.device_id not in k for k in b_keys)
    assert sorted(k.split("/")[0] for k in b_keys) == ["chunks", "manifests"]


def test_unknown_and_malformed_upload_ids(world: World) -> None:
    h, a = world.h, world.a
    expect(h.get(f"/v1/uploads/{new_id()}", a), 404, "not_found", "no such upload")
    for bad in ("A" * 32, "a" * 31, "a" * 33, "..%2F..%2F" + "a" * 22, "a" * 31 + "%0A"):
        expect(h.get(f"/v1/uploads/{bad}", a), 400, "bad_request",
               "upload id must be 32 lowercase hex digits")
    for bad in ("A" * 32, "a" * 31, "..%2F..%2Fchunks"):
        expect(h.get(f"/v1/files/{bad}", a), 400, "bad_request", "file id must be 32")
        expect(h.get(f"/v1/accounts/{bad}/kdf", None), 400, "bad_request", "user id must be")
    r = h.get("/v1/files/../uploads", a)  # matches no route: the gateway refuses it
    assert 400 <= r.status_code < 500
    world.assert_unchanged()


# -- uploads that are decided `rejected` ------------------------------------------
def _reason(world: World, upload_id: str) -> str:
    st = world.h.status(world.a, upload_id)
    assert st["status"] == "rejected", st
    return str(st["reason"])


@pytest.mark.parametrize(("actual", "declared"), [(b"x" * 9, 8), (b"x" * 7, 8), (b"", 8)])
def test_manifest_over_or_under_its_declared_size_is_rejected(
        world: World, actual: bytes, declared: int) -> None:
    h, a = world.h, world.a
    r = h.post("/v1/uploads", upload(world.a_file, manifest_size=declared, chunks=[]), a)
    upload_id = r.json_body["upload_id"]
    key = staging_key(a.user_id, upload_id)
    h.rt.s3.put_object(Bucket=h.rt.settings.bucket, Key=key, Body=actual)
    assert h.commit(key).status == "rejected"
    assert _reason(world, upload_id) == (
        f"manifest is {len(actual)} bytes but {declared} were declared")
    assert h.rt.blobs.size(key) is None  # staging cleaned up
    world.assert_heads_unchanged()


def test_chunk_referenced_but_never_uploaded_is_rejected(world: World) -> None:
    h, a = world.h, world.a
    up = h.stage(a, world.a_file, 1, b"manifest", (b"sent", b"never sent"))
    h.rt.s3.delete_object(Bucket=h.rt.settings.bucket,
                          Key=f"chunks/{a.user_id}/{chunk_id(b'never sent')}")
    assert h.commit(up.key).status == "rejected"
    assert _reason(world, up.upload_id) == "1 referenced chunk(s) were never uploaded"
    world.assert_heads_unchanged()


def test_a_chunk_of_another_user_does_not_count(world: World) -> None:
    """B has `b chunk`; A referencing the same id must upload it itself."""
    h, a = world.h, world.a
    up = h.stage(a, world.a_file, 1, b"manifest", (b"b chunk",), upload_chunks=False)
    assert h.commit(up.key).status == "rejected"
    assert "never uploaded" in _reason(world, up.upload_id)
    world.assert_heads_unchanged()


def test_base_revision_ahead_of_head_is_rejected(world: World) -> None:
    up = world.h.stage(world.a, world.a_file, 5, b"manifest")
    assert world.h.commit(up.key).status == "rejected"
    assert _reason(world, up.upload_id) == "base revision 5 is ahead of the head (1)"
    world.assert_heads_unchanged()


def test_deleting_a_file_that_does_not_exist_is_rejected(world: World) -> None:
    h, a = world.h, world.a
    missing = new_id()
    r = h.delete(f"/v1/files/{missing}?base_revision=1", a)
    assert r.status_code == 202
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").status == "rejected"
    assert "ahead of the head (0)" in _reason(world, r.json_body["upload_id"])
    assert h.head(a, missing) is None
    # and deleting twice: the second is rejected, the tombstone stays
    r = h.delete(f"/v1/files/{world.a_file}?base_revision=1", a)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").status == "accepted"
    r = h.delete(f"/v1/files/{world.a_file}?base_revision=2", a)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").status == "rejected"
    assert _reason(world, r.json_body["upload_id"]) == (
        "the file does not exist or is already deleted")
    head = h.head(a, world.a_file)
    assert head and head["revision"] == 2 and head["deleted"]


def test_a_replayed_upload_id_is_a_no_op(world: World) -> None:
    h, a = world.h, world.a
    s3, bucket = h.rt.s3, h.rt.settings.bucket
    up = h.stage(a, world.a_file, 1, b"version two")
    assert h.commit(up.key).status == "accepted"
    before = h.head(a, world.a_file)
    feed = h.changes(a)
    manifest_key = h.rt.meta.get_upload(up.upload_id).manifest_key  # type: ignore[union-attr]
    # The same staging key PUT again, with other bytes, and its event redelivered.
    s3.put_object(Bucket=bucket, Key=up.key, Body=b"replayed bytes")
    out = h.commit(up.key)
    assert (out.status, out.detail) == ("accepted", "duplicate")
    assert _stable(h.head(a, world.a_file)) == _stable(before)
    assert h.changes(a) == feed
    assert s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read() == b"version two"
    assert h.rt.blobs.size(up.key) is None


# -- query parameters ----------------------------------------------------------------
BAD_FEED_QUERIES = [
    ("wait=-1", ["query parameter wait must be a non-negative integer"]),
    ("wait=999", [f"wait must be between 0 and {LIMITS.max_wait_s}"]),
    ("wait=1.5", ["query parameter wait must be a non-negative integer"]),
    ("wait=%C2%B2", ["query parameter wait must be a non-negative integer"]),  # '²'
    ("wait=", ["query parameter wait"]),
    ("cursor=abc", ["query parameter cursor must be a non-negative integer"]),
    ("cursor=1e3", ["query parameter cursor"]),
    ("cursor=%2B1", ["query parameter cursor"]),  # '+1'
    ("cursor=" + "9" * 19, ["query parameter cursor"]),
    ("cursor=9007199254740993", ["cursor must be between 0 and"]),
    ("limit=0", ["limit must be between 1 and"]),
    (f"limit={LIMITS.max_page + 1}", [f"limit must be between 1 and {LIMITS.max_page}"]),
    ("limit=true", ["query parameter limit"]),
]


def test_bad_feed_query(world: World) -> None:
    def check(query: str, words: list[str]) -> None:
        expect(world.h.get(f"/v1/changes?{query}", world.a), 400, "bad_request", *words)

    each(BAD_FEED_QUERIES, check)


BAD_FILE_QUERIES = [
    ("/v1/uploads/{upload}?wait=-1", ["query parameter wait"]),
    ("/v1/uploads/{upload}?wait=21", ["wait must be between 0 and"]),
    ("/v1/files/{file}?revision=0", ["revision must be between 1 and"]),
    ("/v1/files/{file}?revision=abc", ["query parameter revision"]),
    ("/v1/files/{file}/revisions?limit=0", ["limit must be between 1 and"]),
    ("/v1/files/{file}/revisions?before=-1", ["query parameter before"]),
]


def test_bad_file_and_upload_query(world: World) -> None:
    def check(path: str, words: list[str]) -> None:
        r = world.h.get(path.format(upload=world.b_upload, file=world.a_file), world.a)
        expect(r, 400, "bad_request", *words)

    each(BAD_FILE_QUERIES, check)


BAD_DELETE_QUERIES = [
    ("", ["query parameter base_revision is required"]),
    ("?base_revision=", ["query parameter base_revision"]),
    ("?base_revision=0", ["base_revision must be between 1 and"]),
    ("?base_revision=-1", ["query parameter base_revision"]),
    ("?base_revision=one", ["query parameter base_revision"]),
]


def test_bad_delete_query_writes_nothing(world: World) -> None:
    def check(query: str, words: list[str]) -> None:
        expect(world.h.delete(f"/v1/files/{world.a_file}{query}", world.a), 400, "bad_request",
               *words)
        world.assert_unchanged()

    each(BAD_DELETE_QUERIES, check)


def test_cursor_ahead_of_the_feed_is_409(world: World) -> None:
    r = world.h.get("/v1/changes?cursor=2&wait=20", world.a)  # answers at once
    expect(r, 409, "conflict", "cursor 2 is ahead of the feed (1)", "resync from 0")
    assert world.h.get("/v1/changes?cursor=1", world.a).json_body == {
        "changes": [], "cursor": 1, "has_more": False}


def test_other_content_types_are_415(world: World) -> None:
    r = world.h.http.http.post("/v1/uploads", body=json.dumps(upload(world.a_file)),
                               headers={**world.a.headers, "content-type": "text/plain"})
    assert r.status_code == 415 and b"text/plain" in r.body
    world.assert_unchanged()


# -- whatever arrives: never a 5xx -------------------------------------------------
utf8 = st.characters(codec="utf-8")  # what can travel in a URL or an HTTP body
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)
upload_like = st.fixed_dictionaries({}, optional={
    "file_id": st.sampled_from(["a" * 32, "A" * 32, "../" * 11]) | json_values,
    "base_revision": st.integers(-2, 3) | json_values,
    "manifest_size": st.integers(-1, LIMITS.max_manifest_bytes + 1) | json_values,
    "chunks": st.lists(st.fixed_dictionaries({}, optional={
        "id": st.sampled_from(["c" * 64, "C" * 64]) | json_values,
        "size": st.integers(-1, LIMITS.max_chunk_bytes + 1) | json_values}), max_size=3)
    | json_values,
    "auth_key": st.sampled_from(["ab" * 32, "AB" * 32]) | json_values,
    "kdf": json_values, "user_id": json_values, "device_id": json_values,
    "extra": json_values})
bodies = (upload_like.map(json.dumps) | json_values.map(json.dumps)
          | st.binary(max_size=64) | st.text(utf8, max_size=64))
# Mostly the caller's own ids, so the query and body get parsed too.
segments = st.one_of(
    st.just("<own>"), st.just("<own>"), st.just("<own>"), st.just("<other>"),
    st.sampled_from(["A" * 32, "a" * 31, "..", "%2e%2e%2f"]),
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=40))
odd_number = st.sampled_from(["0", "1", "-1", "20", "21", "999", "1e3", "+1", "²", "١",
                              "9" * 19, ""])
odd_numbers = st.one_of(odd_number, odd_number, st.text(utf8, max_size=12))
ROUTES = [  # (method, path, the query parameters it reads)
    ("POST", "/v1/accounts", ()), ("POST", "/v1/devices", ()), ("POST", "/v1/tokens", ()),
    ("POST", "/v1/uploads", ()), ("GET", "/v1/uploads/{}", ("wait",)),
    ("GET", "/v1/changes", ("cursor", "limit", "wait")), ("GET", "/v1/files/{}", ("revision",)),
    ("DELETE", "/v1/files/{}", ("base_revision",)),
    ("GET", "/v1/files/{}/revisions", ("limit", "before")), ("GET", "/v1/accounts/{}/kdf", ()),
    ("GET", "/v1/openapi.json", ()),
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, dict[str, str], str | bytes, bool]:
    method, template, params = draw(st.sampled_from(ROUTES))
    query = {name: draw(odd_numbers) for name in params if draw(st.booleans())}
    return (method, template, draw(segments), query, draw(bodies),
            draw(st.sampled_from([True, True, False])))


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_fuzzed_requests_are_never_5xx(
        world: World, monkeypatch: pytest.MonkeyPatch,
        request: tuple[str, str, str, dict[str, str], str | bytes, bool]) -> None:
    monkeypatch.setattr(world.h.rt.waker, "wait", lambda topic, timeout_s: False)  # no polls
    method, template, segment, query, body, authed = request
    kind = template.split("/")[2]  # uploads, files or accounts
    own = {"uploads": world.a_upload, "files": world.a_file, "accounts": world.a.user_id}
    other = {"uploads": world.b_upload, "files": world.b_file, "accounts": world.b.user_id}
    segment = {"<own>": own.get(kind), "<other>": other.get(kind)}.get(segment) or segment
    path = template.format(quote(segment, safe="%")) + (
        "?" + urlencode(query) if query else "")
    headers = world.a.headers if authed else {"content-type": "application/json"}
    r = world.h.http.http.request(method, path, headers=headers,
                                  body=body if method == "POST" else b"")
    assert 400 <= r.status_code < 500 or r.status_code in (200, 201, 202), (path, r.body)
    if r.status_code >= 400 and r.status_code != 403:  # 403: the gateway, no route
        reply = json.loads(r.body)
        assert reply.get("message"), reply
    world.assert_heads_unchanged()  # HTTP alone never moves a head: only a commit does
