"""Bad tokens and other users' ids, through the real app: 401 or 404 with a
message, and nothing of the other user's is read or changed."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib.core import tokens
from chalicelib.core.ids import new_id
from tests.harness import Device
from tests.unit.bad_input import World, expect, stable, upload


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
    ("GET", "/v1/files/{file}/revisions"), ("GET", "/v1/account/usage"),
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
    assert out.single.status == "rejected" and "ahead of the head (0)" in str(out.single.reason)
    world.assert_heads_unchanged()
    # From base 0 it is a new file in A's namespace that merely shares the id.
    mine = h.stage(a, world.b_file, 0, b"mine")
    assert h.commit(mine.key).single.status == "accepted"
    a_copy = h.head(a, world.b_file)
    assert a_copy and a_copy["device_id"] == a.device_id and a_copy["revision"] == 1
    assert stable(h.head(b, world.b_file)) == world.snapshot["b_head"]
    assert h.changes(b)["changes"] == world.snapshot["b_feed"]
    # A deleting "B's" file deletes only A's copy.
    r = h.delete_file(a, world.b_file, 1)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").single.status == "accepted"
    assert stable(h.head(b, world.b_file)) == world.snapshot["b_head"]
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
