from __future__ import annotations

import json

import pytest

from chalicelib.core.errors import BadRequest, TooLarge
from chalicelib.core.requests import Limits, parse_json, parse_upload, query_int

L = Limits(max_body_bytes=1000, max_manifest_bytes=100, max_chunk_bytes=50, max_chunks=2)
GOOD = {"file_id": "f" * 32, "base_revision": 0, "manifest_size": 10,
        "chunks": [{"id": "c" * 64, "size": 5}]}


def test_good_upload() -> None:
    req = parse_upload(GOOD, L)
    assert (req.file_id, req.base_revision, req.manifest_size) == ("f" * 32, 0, 10)
    assert req.chunk_ids == ("c" * 64,) and req.chunk_sizes == (5,)


@pytest.mark.parametrize(("change", "error", "match"), [
    ({"manifest_size": 101}, BadRequest, "manifest_size must be between 1 and 100"),
    ({"manifest_size": 0}, BadRequest, "manifest_size"),
    ({"manifest_size": True}, BadRequest, "manifest_size must be an integer"),
    ({"manifest_size": 1.5}, BadRequest, "integer"),
    ({"base_revision": -1}, BadRequest, "base_revision"),
    ({"base_revision": "1"}, BadRequest, "base_revision"),
    ({"file_id": "F" * 32}, BadRequest, "file_id"),
    ({"chunks": {}}, BadRequest, "chunks must be a list"),
    ({"chunks": [{"id": "c" * 64, "size": 51}]}, BadRequest, "chunk size"),
    ({"chunks": ["x"]}, BadRequest, "each chunk"),
    ({"chunks": [{"id": "c" * 64, "size": 1}] * 3}, TooLarge, "at most 2 chunks"),
    ({"extra": 1}, BadRequest, "unknown field"),
])
def test_bad_uploads(change: dict[str, object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        parse_upload({**GOOD, **change}, L)


def test_json_bodies() -> None:
    assert parse_json(json.dumps(GOOD).encode(), L) == GOOD
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse_json(b"{", L)
    with pytest.raises(BadRequest, match="JSON object"):
        parse_json(b"[1]", L)
    with pytest.raises(BadRequest, match="required"):
        parse_json(None, L)
    with pytest.raises(TooLarge):
        parse_json(b" " * 1001, L)
    with pytest.raises(BadRequest):
        parse_json(b"\xff\xfe", L)


def test_query_ints() -> None:
    assert query_int(None, "wait", 0, 0, 20) == 0
    assert query_int({"wait": "20"}, "wait", 0, 0, 20) == 20
    for raw in ("21", "-1", "abc", "1e3", " 1", "9" * 30):
        with pytest.raises(BadRequest, match="wait"):
            query_int({"wait": raw}, "wait", 0, 0, 20)
