"""Bad request bodies and query parameters, through the real app: each gets a
clear 4xx whose message names the problem. Never a 5xx, never a changed head,
a changed feed or a stray upload record."""
from __future__ import annotations

import json
import secrets
from typing import Any

from chalicelib.core.ids import new_id
from tests.unit.bad_input import LIMITS, MAX_INT, World, each, expect, upload

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
    # the digest bound into the manifest's PUT URL
    ({"manifest_sha256": "AB" * 32}, ["manifest_sha256 must be a SHA-256 digest"]),
    ({"manifest_sha256": "ab" * 31}, ["manifest_sha256 must be a SHA-256 digest"]),
    ({"manifest_sha256": 5}, ["manifest_sha256 must be a SHA-256 digest"]),
    ({"manifest_sha256": "../" + "a" * 61}, ["manifest_sha256 must be a SHA-256 digest"]),
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
    ("/v1/accounts", {"auth_key": "ab" * 32, "phone": "+1 555 0100"},
     ["unknown field(s): phone"]),
    ("/v1/accounts", {"auth_key": "ab" * 32, "email": "not an address"},
     ["email must be an address"]),
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
