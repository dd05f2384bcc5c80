"""Uploads decided `rejected` with a reason, and whatever arrives (fuzzed):
never a 5xx, never a changed head or feed."""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core.batch import FINISHED
from chalicelib.core.ids import new_id, staging_key
from tests.harness import chunk_id
from tests.unit.bad_input import LIMITS, World, stable, upload


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
    assert h.commit(key).single.status == "rejected"
    assert _reason(world, upload_id) == (  # a batch of one: its bundle is the manifest
        f"bundle is {len(actual)} bytes but the entries declare {declared}")
    assert h.rt.blobs.size(key) is None  # staging cleaned up
    world.assert_heads_unchanged()


def test_chunk_referenced_but_never_uploaded_is_rejected(world: World) -> None:
    h, a = world.h, world.a
    up = h.stage(a, world.a_file, 1, b"manifest", (b"sent", b"never sent"))
    h.rt.s3.delete_object(Bucket=h.rt.settings.bucket,
                          Key=f"chunks/{a.user_id}/{chunk_id(b'never sent')}")
    assert h.commit(up.key).single.status == "rejected"
    assert _reason(world, up.upload_id) == "1 referenced chunk(s) were never uploaded"
    world.assert_heads_unchanged()


def test_a_chunk_of_another_user_does_not_count(world: World) -> None:
    """B has `b chunk`; A referencing the same id must upload it itself."""
    h, a = world.h, world.a
    up = h.stage(a, world.a_file, 1, b"manifest", (b"b chunk",), upload_chunks=False)
    assert h.commit(up.key).single.status == "rejected"
    assert "never uploaded" in _reason(world, up.upload_id)
    world.assert_heads_unchanged()


def test_base_revision_ahead_of_head_is_rejected(world: World) -> None:
    up = world.h.stage(world.a, world.a_file, 5, b"manifest")
    assert world.h.commit(up.key).single.status == "rejected"
    assert _reason(world, up.upload_id) == "base revision 5 is ahead of the head (1)"
    world.assert_heads_unchanged()


def test_deleting_a_file_that_does_not_exist_is_rejected(world: World) -> None:
    h, a = world.h, world.a
    missing = new_id()
    r = h.delete_file(a, missing, 1)
    assert r.status_code == 202
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").single.status == "rejected"
    assert "ahead of the head (0)" in _reason(world, r.json_body["upload_id"])
    assert h.head(a, missing) is None
    # and deleting twice: the second is rejected, the tombstone stays
    r = h.delete_file(a, world.a_file, 1)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").single.status == "accepted"
    r = h.delete_file(a, world.a_file, 2)
    assert h.commit(f"staging/{a.user_id}/{r.json_body['upload_id']}").single.status == "rejected"
    assert _reason(world, r.json_body["upload_id"]) == (
        "the file does not exist or is already deleted")
    head = h.head(a, world.a_file)
    assert head and head["revision"] == 2 and head["deleted"]


def test_a_replayed_upload_id_is_a_no_op(world: World) -> None:
    h, a = world.h, world.a
    s3, bucket = h.rt.s3, h.rt.settings.bucket
    up = h.stage(a, world.a_file, 1, b"version two")
    assert h.commit(up.key).single.status == "accepted"
    before = h.head(a, world.a_file)
    feed = h.changes(a)
    # The same staging key PUT again, with other bytes, and its event redelivered.
    s3.put_object(Bucket=bucket, Key=up.key, Body=b"replayed bytes")
    out = h.commit(up.key)
    assert (out.status, out.detail, out.single.status) == (FINISHED, "duplicate", "accepted")
    assert stable(h.head(a, world.a_file)) == stable(before)
    assert h.changes(a) == feed
    assert h.manifest(a, world.a_file) == b"version two"
    assert h.rt.blobs.size(up.key) is None



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
