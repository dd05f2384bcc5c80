"""Files through the pipeline and back, and a server that misbehaves (invariant 8).

The "server" here is a dict of stored envelopes keyed by chunk id. Each
attack rewrites what it returns; the client must raise IntegrityError and
leave nothing behind: no destination file, no temporary file.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sealsync_client import (
    AccountKeys,
    ChunkRef,
    IntegrityError,
    Keyring,
    Manifest,
    decrypt_file,
    encrypt_file,
    open_chunk,
    open_chunks,
    seal_chunk,
    sealed_len,
)
from sealsync_client.chunking import Chunker

USER = "0123456789abcdef0123456789abcdef"
RING = AccountKeys(bytes(range(32))).root_keyring()
# Small chunks so a few hundred KiB make many chunks (the format is the same).
SMALL = Chunker(RING.chunker, min_size=4096, cut_size=16384, max_size=65536)

Store = dict[str, bytes]


def put_file(tmp: Path, name: str, data: bytes, store: Store,
             ring: Keyring = RING, chunker: Chunker | None = SMALL) -> Manifest:
    """Upload `data` as a file: chunks into `store`, and return its manifest."""
    path = tmp / name
    path.write_bytes(data)
    refs = []
    for c in encrypt_file(path, ring, USER, chunker=chunker):
        assert len(c.envelope) == sealed_len(c.size)
        store.setdefault(c.id, c.envelope)
        refs.append(ChunkRef(c.id, c.size))
    return Manifest(name, len(data), 1_700_000_000_000_000_000, 0o100640, "test", tuple(refs))


def restore(tmp: Path, manifest: Manifest, fetch: Callable[[str], bytes],
            ring: Keyring = RING) -> Path:
    dest = tmp / "restored"
    decrypt_file(manifest, ring, USER, fetch, dest)
    return dest


@pytest.mark.parametrize("size", [1, 4095, 4096, 65536, 300_000, 1_000_003])
def test_round_trip(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    store: Store = {}
    manifest = put_file(tmp_path, "f", data, store)
    assert sum(c.size for c in manifest.chunks) == size
    dest = restore(tmp_path, manifest, store.__getitem__)
    assert dest.read_bytes() == data
    assert dest.stat().st_mtime_ns == manifest.mtime_ns
    assert dest.stat().st_mode & 0o777 == 0o640


def test_round_trip_with_the_real_chunk_sizes(tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    store: Store = {}
    manifest = put_file(tmp_path, "big", data, store, chunker=None)
    assert len(manifest.chunks) >= 3
    assert restore(tmp_path, manifest, store.__getitem__).read_bytes() == data


def test_an_empty_file_has_no_chunks(tmp_path: Path) -> None:
    store: Store = {}
    manifest = put_file(tmp_path, "empty", b"", store)
    assert manifest.chunks == () and store == {}
    assert restore(tmp_path, manifest, store.__getitem__).read_bytes() == b""


def test_inline_content_needs_no_chunks(tmp_path: Path) -> None:
    manifest = Manifest("small.txt", 5, 0, 0o100644, "d", inline=b"hello")
    nothing: Store = {}
    assert b"".join(open_chunks(manifest, RING, USER, nothing.__getitem__)) == b"hello"


def test_dedup_inside_a_keyring_only(tmp_path: Path) -> None:
    data = os.urandom(200_000)
    store: Store = {}
    a = put_file(tmp_path, "a", data, store)
    b = put_file(tmp_path, "copy of a", data, store)
    assert a.chunks == b.chunks  # same user, same keyring: same ids
    other = AccountKeys(bytes(32)).root_keyring()
    c = put_file(tmp_path, "c", data, {}, ring=other,
                 chunker=Chunker(other.chunker, min_size=4096, cut_size=16384, max_size=65536))
    assert not {r.id for r in a.chunks} & {r.id for r in c.chunks}


# -- a misbehaving server -------------------------------------------------------
def assert_rejected(tmp_path: Path, manifest: Manifest, fetch: Callable[[str], bytes],
                    ring: Keyring = RING) -> None:
    before = set(os.listdir(tmp_path))
    with pytest.raises(IntegrityError):
        restore(tmp_path, manifest, fetch, ring)
    # Only the part file stays, for the next attempt to resume (test_resume.py);
    # it never replaces the destination.
    assert set(os.listdir(tmp_path)) - before <= {"restored.part"}


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Manifest, Manifest, Store]:
    store: Store = {}
    a = put_file(tmp_path, "a", os.urandom(400_000), store)
    b = put_file(tmp_path, "b", os.urandom(400_000), store)
    assert len(a.chunks) >= 4 and len(b.chunks) >= 4
    return a, b, store


def test_wrong_key_is_rejected(tmp_path: Path, two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, _, store = two_files
    assert_rejected(tmp_path, a, store.__getitem__, AccountKeys(bytes(32)).root_keyring())


def test_tampered_chunk_is_rejected(tmp_path: Path,
                                    two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, _, store = two_files
    victim = a.chunks[2].id
    for index in (0, 1, 30, 70, len(store[victim]) // 2, len(store[victim]) - 1):
        bad = bytearray(store[victim])
        bad[index] ^= 0x80
        assert_rejected(tmp_path, a, {**store, victim: bytes(bad)}.__getitem__)


def test_chunk_swapped_in_from_another_file_is_rejected(
        tmp_path: Path, two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, b, store = two_files
    theirs = b.chunks[1].id
    assert_rejected(tmp_path, a, lambda cid: store[theirs] if cid == a.chunks[1].id
                    else store[cid])


def test_chunks_reordered_within_a_file_are_rejected(
        tmp_path: Path, two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, _, store = two_files
    first, second = a.chunks[0].id, a.chunks[1].id
    swap = {first: store[second], second: store[first]}
    assert_rejected(tmp_path, a, lambda cid: swap.get(cid, store[cid]))


def test_truncated_chunk_is_rejected(tmp_path: Path,
                                     two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, _, store = two_files
    last = a.chunks[-1].id
    assert_rejected(tmp_path, a, lambda cid: store[cid][:-17] if cid == last else store[cid])


def test_chunk_of_another_user_is_rejected() -> None:
    data = b"same bytes, another account"
    cid, envelope = seal_chunk(RING, "ffffffffffffffffffffffffffffffff", data)
    with pytest.raises(IntegrityError):
        open_chunk(RING, USER, cid, len(data), envelope)


def test_failure_mid_file_leaves_an_existing_destination_untouched(
        tmp_path: Path, two_files: tuple[Manifest, Manifest, Store]) -> None:
    a, _, store = two_files
    dest = tmp_path / "restored"
    dest.write_bytes(b"my local edit")
    last = a.chunks[-1].id
    with pytest.raises(IntegrityError):
        decrypt_file(a, RING, USER, lambda cid: b"\x02" + store[cid][1:] if cid == last
                     else store[cid], dest)
    assert dest.read_bytes() == b"my local edit"
