from __future__ import annotations

import pytest

from chalicelib.core.errors import BadRequest
from chalicelib.core.ids import (
    check_chunk_id,
    check_id,
    chunk_key,
    manifest_key,
    new_id,
    parse_staging_key,
    staging_key,
)

U, F, C = "a" * 32, "b" * 32, "c" * 64


def test_new_ids_are_valid_and_distinct() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(check_id(i, "id") == i for i in ids)


@pytest.mark.parametrize("bad", ["", "A" * 32, "a" * 31, "a" * 33, "../" + "a" * 29,
                                 "g" * 32, None, 5, ["a" * 32], "a" * 31 + "\n"])
def test_bad_ids_are_refused(bad: object) -> None:
    with pytest.raises(BadRequest, match="32 lowercase hex"):
        check_id(bad, "file id")


@pytest.mark.parametrize("bad", ["c" * 63, "C" * 64, "c" * 64 + "/", None])
def test_bad_chunk_ids_are_refused(bad: object) -> None:
    with pytest.raises(BadRequest):
        check_chunk_id(bad)


def test_keys_live_under_the_users_prefix() -> None:
    assert staging_key(U, F) == f"staging/{U}/{F}"
    assert chunk_key(U, C) == f"chunks/{U}/{C}"
    assert manifest_key(U, F, F) == f"manifests/{U}/{F}/{F}"
    assert parse_staging_key(staging_key(U, F)) == (U, F)


@pytest.mark.parametrize("key", [f"chunks/{U}/{F}", f"staging/{U}", f"staging/{U}/{F}/x",
                                 f"staging/../{F}", f"staging/{U.upper()}/{F}",
                                 f"xstaging/{U}/{F}", f"staging//{U}/{F}"])
def test_foreign_or_malformed_staging_keys_are_refused(key: str) -> None:
    with pytest.raises(BadRequest):
        parse_staging_key(key)
