"""Manifests: exact encoding, strict decoding, and binding to their place."""
from __future__ import annotations

from dataclasses import replace

import pytest
from sealsync_client import (
    AccountKeys,
    ChunkRef,
    IntegrityError,
    Manifest,
    ManifestPlace,
    crypto,
    open_manifest,
    seal_manifest,
)
from sealsync_client.manifest import INLINE_MAX, INLINE_READ_MAX, MAX_CHUNKS, Link

USER = "0123456789abcdef0123456789abcdef"
FILE = "00112233445566778899aabbccddeeff"
RING = AccountKeys(bytes(range(32))).root_keyring()
ID = "ab" * 32
# Decoding does not check the signature (history.py does, with the account
# key; tests/client/test_history.py), so any 64 bytes do here.
LINK = Link(b"\x11" * 32, "0d" * 16, 7, 41, b"\x22" * 32)
SIG = bytes(range(64))


def linked(m: Manifest) -> Manifest:
    return replace(m, link=LINK, signature=SIG)


def chunked(path: str = "Photos/2024/IMG_0001.JPG") -> Manifest:
    refs = (ChunkRef(ID, 1000), ChunkRef("cd" * 32, 24), ChunkRef(ID, 1000))
    return linked(Manifest(path, 2024, -5, 0o100755, "my laptop \u2603", refs))


@pytest.mark.parametrize("m", [
    chunked(),
    linked(Manifest("a", 0, 0, 0, "")),
    linked(Manifest("inline.txt", 3, 1, 0o600, "d", inline=b"abc")),
    linked(Manifest("empty", 0, 1, 0o600, "d", inline=b"")),
    linked(Manifest.deleted("gone/for/good", 2**62, "phone")),
], ids=["chunked", "empty", "inline", "empty-inline", "tombstone"])
def test_encode_decode_round_trip(m: Manifest) -> None:
    assert Manifest.decode(m.encode()) == m
    assert seal_open(m) == m
    assert m.encode() == m.body() + SIG and m.body().endswith(LINK.encode())


def test_an_unsigned_manifest_cannot_be_encoded() -> None:
    bare = Manifest("a", 0, 0, 0, "")
    with pytest.raises(ValueError, match="History.sign"):
        bare.encode()
    with pytest.raises(ValueError, match="History.sign"):
        replace(bare, link=LINK).encode()
    with pytest.raises(ValueError):
        replace(bare, signature=SIG)  # a signature without a link
    for bad in ({"prev": b"x"}, {"device_id": "AB" * 16}, {"counter": 0}, {"feed_seq": -1}):
        with pytest.raises(ValueError):
            replace(LINK, **bad)


def seal_open(m: Manifest, place: ManifestPlace | None = None) -> Manifest:
    place = place or ManifestPlace.for_upload(USER, FILE, 6)
    return open_manifest(RING, place, seal_manifest(RING, place, m))


@pytest.mark.parametrize("kwargs", [
    {"path": ""}, {"path": "a\x00b"}, {"path": "x" * 4097}, {"device": "d" * 256},
    {"mode": -1}, {"mode": 2**32}, {"size": 5},  # sizes do not add up
    {"inline": b"abc"},  # inline and chunks together
    {"chunks": (ChunkRef("AB" * 32, 2024),)}, {"chunks": (ChunkRef("ab" * 31, 2024),)},
    {"chunks": (ChunkRef(ID, 0), ChunkRef(ID, 2024))},
    {"chunks": (ChunkRef(ID, 17 * 1024 * 1024),), "size": 17 * 1024 * 1024},
    {"tombstone": True},
])
def test_invalid_manifests_cannot_be_built(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {**chunked().__dict__, **kwargs}
    with pytest.raises(ValueError):
        Manifest(**fields)  # type: ignore[arg-type]


def test_limits() -> None:
    Manifest("big", INLINE_READ_MAX, 0, 0, "", inline=bytes(INLINE_READ_MAX))
    with pytest.raises(ValueError):
        Manifest("big", INLINE_READ_MAX + 1, 0, 0, "", inline=bytes(INLINE_READ_MAX + 1))
    refs = tuple(ChunkRef(ID, 1) for _ in range(MAX_CHUNKS))
    assert seal_open(linked(Manifest("many", MAX_CHUNKS, 0, 0, "", refs))).chunks == refs
    with pytest.raises(ValueError):
        Manifest("too many", MAX_CHUNKS + 1, 0, 0, "", refs + (ChunkRef(ID, 1),))
    assert INLINE_MAX == 16 * 1024


def test_decoding_is_strict() -> None:
    raw = chunked().encode()
    for bad in (raw[:-1], raw + b"\x00", b"\x01" + raw[1:], b"\x03" + raw[1:],
                raw[:1] + b"\x04" + raw[2:],
                raw[:1] + b"\x03" + raw[2:], b""):
        with pytest.raises(IntegrityError):
            Manifest.decode(bad)


def test_an_old_manifest_replayed_as_a_newer_revision_is_rejected() -> None:
    old = ManifestPlace.for_upload(USER, FILE, 2)  # revision 3
    envelope = seal_manifest(RING, old, chunked())
    assert open_manifest(RING, ManifestPlace.for_download(USER, FILE, 3), envelope) == chunked()
    for place in (ManifestPlace.for_download(USER, FILE, 4),
                  ManifestPlace(USER, FILE, 3, 1),
                  ManifestPlace.for_download(USER, "ff" * 16, 3),
                  ManifestPlace.for_download("ee" * 16, FILE, 3)):
        with pytest.raises(IntegrityError):
            open_manifest(RING, place, envelope)


def test_the_server_sees_only_a_padded_length() -> None:
    """Names and sizes are inside; two names of different length share a bucket."""
    place = ManifestPlace.for_upload(USER, FILE, 0)
    a = seal_manifest(RING, place, chunked("Taxes/2024/return-final.pdf"))
    b = seal_manifest(RING, place, chunked("Taxes/2024/return-final-v2.pdf"))
    assert len(a) == len(b)
    for secret in (b"Taxes", b"return", b"laptop", ID.encode(), bytes.fromhex(ID)):
        assert secret not in a
    assert len(a) == crypto.sealed_len(len(chunked("Taxes/2024/return-final.pdf").encode()))


def test_place_must_be_a_real_revision() -> None:
    with pytest.raises(ValueError):
        ManifestPlace(USER, FILE, 3, 3).context(RING)
    with pytest.raises(ValueError):
        ManifestPlace("not hex", FILE, 1, 0).context(RING)
