"""Packs (docs/FORMAT.md section 12): round trip, a server that misbehaves,
what the layout and the padding hide, and coalescing ranged GETs."""
from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealsync_client import AccountKeys, IntegrityError, Keyring, crypto, open_chunk, seal_chunk
from sealsync_client import pack as P
from sealsync_client.pack import BlobRef, PackWriter

from .vectors_gen import FixedRandom, forged_index_tail

USER = "0123456789abcdef0123456789abcdef"
OTHER_USER = "fedcba9876543210fedcba9876543210"
RING = AccountKeys(bytes(range(32))).root_keyring()
OTHER_RING = AccountKeys(bytes(range(1, 33))).root_keyring()


def data_of(label: str, size: int) -> bytes:
    return hashlib.shake_256(label.encode()).digest(size)


def sealed(labels_sizes: list[tuple[str, int]], ring: Keyring = RING,
           user: str = USER) -> list[tuple[str, bytes, bytes]]:
    """(chunk id, plaintext, envelope) per chunk."""
    out = []
    for label, size in labels_sizes:
        data = data_of(label, size)
        cid, env = seal_chunk(ring, user, data, rand=FixedRandom(label))
        out.append((cid, data, env))
    return out


def make_pack(chunks: list[tuple[str, bytes, bytes]], ring: Keyring = RING,
              user: str = USER, label: str = "pack") -> P.SealedPack:
    w = PackWriter(ring, user)
    for cid, _, env in chunks:
        assert w.add(cid, env)
    return w.finish(rand=FixedRandom(label))


CHUNKS = sealed([(f"chunk {i}", 1000 + 7919 * i) for i in range(12)])
PACK = make_pack(CHUNKS)


def tail_of(data: bytes) -> bytes:
    return data[-P.tail_needed(data[-65536:]):]


def test_round_trip_through_the_tail_and_ranged_gets() -> None:
    tail = PACK.data[-65536:]  # what a suffix GET returns
    index = P.open_pack_index(RING, USER, PACK.pack_id, tail, size=len(PACK.data))
    assert index.size == len(PACK.data) and list(index.blobs) == PACK.blobs
    assert P.open_pack(RING, USER, PACK.pack_id, PACK.data) == index
    plaintexts = {cid: data for cid, data, _ in CHUNKS}
    for rng in P.coalesce(index.blobs[::3], gap=10_000):
        got = PACK.data[rng.start:rng.end]  # one ranged GET
        for ref in rng.refs:
            env = P.blob_at(got, ref, rng.start)
            assert open_chunk(RING, USER, ref.chunk_id, len(plaintexts[ref.chunk_id]), env) \
                == plaintexts[ref.chunk_id]
    for cid, _, env in CHUNKS:  # each blob is the chunk's envelope, byte for byte
        ref = index.find(cid)
        assert ref is not None and P.blob_at(PACK.data, ref) == env
    assert index.find("00" * 32) is None


def test_a_short_tail_says_how_much_to_fetch() -> None:
    needed = P.tail_needed(PACK.data[-P.TRAILER_LEN:])
    assert needed == len(tail_of(PACK.data)) > P.TRAILER_LEN
    with pytest.raises(ValueError, match=str(needed)):
        P.open_pack_index(RING, USER, PACK.pack_id, PACK.data[-needed + 1:])
    P.open_pack_index(RING, USER, PACK.pack_id, PACK.data[-needed:])


@pytest.mark.parametrize("case", ["pack id", "user", "keyring"])
def test_the_index_opens_only_for_its_pack_user_and_keyring(case: str) -> None:
    other = make_pack(CHUNKS, label="another pack")
    tail = tail_of(PACK.data)
    with pytest.raises(IntegrityError):
        if case == "pack id":  # the server swaps indexes (or whole packs) between packs
            P.open_pack_index(RING, USER, other.pack_id, tail)
        elif case == "user":
            P.open_pack_index(RING, OTHER_USER, PACK.pack_id, tail)
        else:
            P.open_pack_index(OTHER_RING, USER, PACK.pack_id, tail)
    with pytest.raises(IntegrityError):  # another pack's tail served under this id
        P.open_pack_index(RING, USER, PACK.pack_id, tail_of(other.data))


def read_index(pack_id: str, data: bytes) -> P.PackIndex:
    """What a reader does: a suffix GET, and a second one if the index is longer."""
    tail = data[-65536:]
    needed = P.tail_needed(tail)
    if needed > len(tail):
        tail = data[-needed:]
    return P.open_pack_index(RING, USER, pack_id, tail, size=len(data))


def test_every_flipped_byte_of_the_tail_is_refused() -> None:
    small = make_pack(CHUNKS[:2])
    assert read_index(small.pack_id, small.data).blobs == tuple(small.blobs)
    for i in range(len(small.data) - len(tail_of(small.data)) - 10, len(small.data)):
        bad = bytearray(small.data)
        bad[i] ^= 0x01
        with pytest.raises(IntegrityError):
            read_index(small.pack_id, bytes(bad))


def test_truncation_and_unknown_versions_are_refused() -> None:
    data = PACK.data
    for bad in (data[:-1], data[:-P.TRAILER_LEN], data[-P.TRAILER_LEN + 1:], b"",
                data[:-1] + b"Q"):  # magic changed
        with pytest.raises(IntegrityError):
            P.open_pack_index(RING, USER, PACK.pack_id, bad)
    for version in (0, 2, 255):
        bad = data[:-5] + bytes([version]) + data[-4:]
        with pytest.raises(IntegrityError):
            P.tail_needed(bad)
        with pytest.raises(IntegrityError):
            P.open_pack(RING, USER, PACK.pack_id, bad)
    with pytest.raises(IntegrityError):  # a pack cut short in front
        P.open_pack(RING, USER, PACK.pack_id, data[1:])
    with pytest.raises(IntegrityError):  # the size from Content-Range disagrees
        P.open_pack_index(RING, USER, PACK.pack_id, tail_of(data), size=len(data) + P.BUCKET)


@pytest.mark.parametrize("where", ["header", "gap"])
def test_a_whole_pack_reader_checks_the_clear_bytes(where: str) -> None:
    index = P.open_pack(RING, USER, PACK.pack_id, PACK.data)
    gap_end = index.size - len(tail_of(PACK.data))
    assert gap_end - index.blobs[-1].end > 3
    at = 2 if where == "header" else index.blobs[-1].end + 3
    bad = bytearray(PACK.data)
    bad[at] ^= 0x01
    with pytest.raises(IntegrityError):
        P.open_pack(RING, USER, PACK.pack_id, bytes(bad))
    if where == "gap":  # a tail that reaches into the gap checks it too
        with pytest.raises(IntegrityError):
            P.open_pack_index(RING, USER, PACK.pack_id, bytes(bad[at:]))


def forged_index(entries: list[tuple[bytes, int, int]], pack_size: int, count: int | None = None,
                 pid: bytes = bytes(16)) -> bytes:
    """A tail whose index is authentic (right keys and binding) but whose
    content breaks a layout rule."""
    return forged_index_tail(RING, USER, pid, entries, pack_size, count)


def test_authentic_but_non_canonical_indexes_are_refused() -> None:
    good = [(bytes.fromhex(r.chunk_id), r.offset, r.length) for r in PACK.blobs[:3]]
    raw = good[-1][1] + good[-1][2] + crypto.sealed_len(8 + 40 * 3) + P.TRAILER_LEN
    size = P.pack_len(raw)
    pid = "00" * 16
    assert P.open_pack_index(RING, USER, pid, forged_index(good, size)).size == size
    swapped = [(good[1][0], good[0][1], good[1][2]), (good[0][0], good[1][1], good[0][2]),
               good[2]]
    for bad in [
        forged_index(good, size + P.BUCKET),  # not its bucket
        forged_index(good, size, count=4),  # count disagrees
        forged_index([], size),  # empty
        forged_index(good[:1] + good[:1] + good[2:], size),  # a chunk id twice
        forged_index(swapped, size),  # not in chunk-id order
        forged_index([good[0], (good[1][0], good[1][1] + 1, good[1][2]), good[2]], size),
        forged_index([good[0], good[1], (good[2][0], good[2][1], good[2][2] + 1)], size),
    ]:
        with pytest.raises(IntegrityError):
            P.open_pack_index(RING, USER, pid, bad)


def test_blob_order_follows_chunk_ids_not_insertion_order() -> None:
    ids = [cid for cid, _, _ in CHUNKS]
    assert ids != sorted(ids)
    in_pack = [r.chunk_id for r in sorted(PACK.blobs, key=lambda r: r.offset)]
    assert in_pack == sorted(ids)
    reversed_pack = make_pack(CHUNKS[::-1])
    assert reversed_pack.blobs == PACK.blobs  # the same layout, whatever order they came in
    assert reversed_pack.data[:-len(tail_of(PACK.data))] == PACK.data[:-len(tail_of(PACK.data))]


def test_padding_hides_the_count_of_small_blobs_within_a_bucket() -> None:
    two = make_pack(sealed([("a", 17_000), ("b", 20_000)]))
    five = make_pack(sealed([(f"c{i}", 9_000 + i) for i in range(5)]))
    one = make_pack(sealed([("d", 40)]))
    assert len(two.data) == len(five.data) == len(one.data) == P.BUCKET
    assert len(tail_of(two.data)) != len(tail_of(five.data))  # only inside the encryption
    for size in (1, 65536, 100_000, 3_000_000, 9_000_000, 16_000_000):
        n = P.pack_len(size)
        assert n >= size and n % P.BUCKET == 0 and crypto.padme(n) == n


def test_a_writer_fills_up_to_its_target_and_no_further() -> None:
    target = 4 * P.BUCKET
    w = PackWriter(RING, USER, target)
    added = []
    for i in range(100):
        cid, _, env = sealed([(f"fill {i}", 12_000)])[0]
        if not w.add(cid, env):
            break
        added.append(cid)
        assert w.size <= target
    else:
        raise AssertionError("never full")
    assert w.add(added[0], b"ignored: already in the pack")  # kept once
    assert added[0] in w and "zz" not in w and len(w) == len(added)
    sp = w.finish(rand=FixedRandom("full"))
    assert len(sp.data) <= target and len(sp.blobs) == len(added)
    assert len(sp.data) + 12_000 + 74 > target - 3 * P.BUCKET  # reasonably full


def test_a_writer_refuses_what_is_not_a_chunk_envelope() -> None:
    w = PackWriter(RING, USER, P.BUCKET)
    cid, _, env = CHUNKS[0]
    with pytest.raises(ValueError):
        w.add(cid, env[:-1])
    with pytest.raises(ValueError):
        w.add(cid, env[:1] + b"M" + env[2:])
    big_id, _, big = sealed([("big", 70_000)])[0]
    with pytest.raises(ValueError):  # larger than any pack of this target
        w.add(big_id, big)
    with pytest.raises(ValueError):
        w.finish()
    with pytest.raises(ValueError):
        PackWriter(RING, USER, P.MAX_PACK_SIZE + 1)


def test_blob_at_refuses_a_short_range() -> None:
    ref = PACK.blobs[1]
    got = PACK.data[ref.offset:ref.end]
    assert P.blob_at(got, ref, ref.offset) == got
    with pytest.raises(IntegrityError):  # the server returned less than asked for
        P.blob_at(got[:-1], ref, ref.offset)
    with pytest.raises(ValueError):
        P.blob_at(got, ref, ref.offset + 1)


# -- coalescing ---------------------------------------------------------------
@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[BlobRef], list[BlobRef]]:
    """A pack's blobs (back to back) and the wanted ones (maybe repeated)."""
    lengths = draw(st.lists(st.integers(76, 300_000), min_size=1, max_size=40))
    blobs, offset = [], P.HEADER_LEN
    for i, length in enumerate(lengths):
        blobs.append(BlobRef(f"{i:064x}", offset, length))
        offset += length
    wanted = draw(st.lists(st.sampled_from(blobs), min_size=0, max_size=60))
    return blobs, wanted


@given(layouts(), st.integers(0, 1_000_000), st.none() | st.integers(1, 3_000_000))
def test_coalesce_covers_every_wanted_blob_once_and_fetches_little(
        layout: tuple[list[BlobRef], list[BlobRef]], gap: int, max_span: int | None) -> None:
    _, wanted = layout
    ranges = P.coalesce(wanted, gap=gap, max_span=max_span)
    covered = [ref for r in ranges for ref in r.refs]
    assert sorted(covered) == sorted(set(wanted))  # each wanted blob exactly once
    for r in ranges:
        assert r.refs == sorted(r.refs, key=lambda b: b.offset)
        assert r.start == r.refs[0].offset and r.end == max(b.end for b in r.refs)  # tight
        for a, b in zip(r.refs, r.refs[1:], strict=False):
            assert b.offset - a.end <= gap  # no hole wider than the gap inside a range
        assert max_span is None or len(r.refs) == 1 or r.end - r.start <= max_span
    for a, b in zip(ranges, ranges[1:], strict=False):
        assert a.end <= b.start  # sorted and disjoint
        merged = b.end - a.start
        # split only when the hole is wider than the gap, or merging breaks max_span
        assert b.start - a.end > gap or (max_span is not None and merged > max_span)


def test_coalesce_examples() -> None:
    a, b, c = BlobRef("a", 5, 10), BlobRef("b", 15, 10), BlobRef("c", 100, 10)
    assert P.coalesce([c, a, b, a], gap=0) == [P.Range(5, 25, [a, b]), P.Range(100, 110, [c])]
    assert P.coalesce([c, a], gap=85) == [P.Range(5, 110, [a, c])]
    assert P.coalesce([a, b], gap=100, max_span=15) == [P.Range(5, 15, [a]),
                                                        P.Range(15, 25, [b])]
    assert P.coalesce([]) == []


def test_a_flipped_or_misdirected_blob_fails_as_a_chunk() -> None:
    """Blobs verify on their own: a reader that trusts ranges from the server
    gets an IntegrityError, never wrong data."""
    sizes = {cid: len(data) for cid, data, _ in CHUNKS}
    a, b = PACK.blobs[0], PACK.blobs[1]
    bad = bytearray(PACK.data)
    bad[a.offset + 100] ^= 0x01
    with pytest.raises(IntegrityError):
        open_chunk(RING, USER, a.chunk_id, sizes[a.chunk_id], P.blob_at(bytes(bad), a))
    for wrong in (BlobRef(a.chunk_id, b.offset, b.length),  # another blob's range
                  BlobRef(a.chunk_id, a.offset + 1, a.length)):  # shifted
        with pytest.raises(IntegrityError):
            open_chunk(RING, USER, a.chunk_id, sizes[a.chunk_id], P.blob_at(PACK.data, wrong))
    moved = make_pack([c for c in CHUNKS if c[0] in (a.chunk_id, PACK.blobs[5].chunk_id)],
                      label="other pack")  # a blob from another pack still opens
    ref = next(r for r in moved.blobs if r.chunk_id == a.chunk_id)
    assert open_chunk(RING, USER, a.chunk_id, sizes[a.chunk_id], P.blob_at(moved.data, ref))
