"""core.packs, pure: what a batch may declare about packs, and what a
commit may trust of what arrived."""
from __future__ import annotations

import re
from typing import Any

import pytest

from chalicelib.core.errors import BadRequest, TooLarge
from chalicelib.core.packs import (
    Blob,
    Location,
    PackDecl,
    arrived,
    decode_packs,
    encode_packs,
    pack_key,
    parse_packs,
)
from chalicelib.core.requests import Limits

A, B, C = "a" * 64, "b" * 64, "c" * 64
P1, P2 = "1" * 32, "2" * 32
SIZES = {A: 100, B: 200, C: 300}


def pack(pid: str = P1, size: int = 1000, *blobs: tuple[str, int, int]) -> dict[str, Any]:
    return {"pack_id": pid, "size": size,
            "blobs": [{"chunk": c, "offset": o, "length": n} for c, o, n in blobs]}


def test_a_valid_declaration_parses_in_any_blob_order() -> None:
    got = parse_packs([pack(P1, 1000, (B, 105, 200), (A, 5, 100)),
                       pack(P2, 400, (C, 0, 300))], Limits(), SIZES)
    assert got == (PackDecl(P1, 1000, (Blob(B, 105, 200), Blob(A, 5, 100))),
                   PackDecl(P2, 400, (Blob(C, 0, 300),)))
    assert parse_packs(None, Limits(), SIZES) == ()


@pytest.mark.parametrize(("packs", "words"), [
    ("nope", "must be a list"),
    ([pack("X" * 32, 1000, (A, 5, 100))], "pack_id must be"),
    ([pack(P1, 1000, (A, 950, 100))], "outside the pack"),
    ([pack(P1, 1000, (A, 5, 100), (B, 50, 200))], "overlap"),
    ([pack(P1, 1000, (A, 5, 100)), pack(P2, 1000, (A, 5, 100))], "also in packs[0]"),
    ([pack(P1, 1000, (A, 5, 100)), pack(P1, 1000, (B, 5, 200))], "pack_id appears twice"),
    ([pack(P1, 1000, (A, 5, 100), (A, 200, 100))], "twice in the pack"),
    ([pack(P1, 1000, (A, 5, 99))], "99 bytes in the pack but 100"),
    ([pack(P1, 0, (A, 0, 100))], "pack size"),
    ([pack(P1, 1000)], "non-empty list"),
    ([{**pack(P1, 1000, (A, 5, 100)), "extra": 1}], "unknown field"),
    ([pack(P1, 1000, (A, -1, 100))], "blob offset"),
    ([pack(P1, 1000, (A, True, 100))], "blob offset"),
])
def test_bad_declarations_are_400s_naming_the_pack(packs: Any, words: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(words)):
        parse_packs(packs, Limits(), SIZES)


def test_a_blob_no_entry_references_is_allowed_and_never_trusted() -> None:
    """An interrupted upload's pack, declared again for some of its chunks."""
    [decl] = parse_packs([pack(P1, 1000, (A, 5, 100), ("d" * 64, 105, 50))], Limits(), SIZES)
    found, _ = arrived((decl,), {P1: 1000})
    assert set(found) == {A, "d" * 64}  # the commit keeps only chunks entries need


def test_too_many_packs_or_blobs_are_413() -> None:
    small = Limits(max_batch_packs=1, max_pack_blobs=1, max_pack_bytes=500)
    with pytest.raises(TooLarge, match="at most 1 packs"):
        parse_packs([pack(P1, 400, (A, 0, 100)), pack(P2, 400, (B, 0, 200))], small, SIZES)
    with pytest.raises(TooLarge, match="at most 1 blobs"):
        parse_packs([pack(P1, 400, (A, 0, 100), (B, 100, 200))], small, SIZES)
    with pytest.raises(BadRequest, match="pack size"):
        parse_packs([pack(P1, 501, (A, 0, 100))], small, SIZES)


def test_only_packs_of_exactly_the_declared_size_are_trusted() -> None:
    decls = (PackDecl(P1, 1000, (Blob(A, 5, 100),)), PackDecl(P2, 400, (Blob(B, 0, 200),)),
             PackDecl("3" * 32, 400, (Blob(C, 0, 300),)))
    found, lost = arrived(decls, {P1: 1000, P2: 401})  # P2 lies, the third never came
    assert found == {A: Location(P1, 5, 100)}
    assert lost == {B, C}


def test_the_stored_form_round_trips() -> None:
    decls = (PackDecl(P1, 2**26, (Blob(B, 105, 200), Blob(A, 5, 100))),
             PackDecl(P2, 400, (Blob(C, 0, 300),)))
    assert decode_packs(*encode_packs(decls)) == decls
    assert decode_packs(b"", b"") == ()


def test_a_pack_lives_under_its_users_prefix() -> None:
    assert pack_key("u" * 32, P1) == f"packs/{'u' * 32}/{P1}"
