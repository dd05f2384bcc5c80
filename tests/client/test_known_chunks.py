"""known_chunks.KnownChunks: what it records, and what it refuses to read."""
from __future__ import annotations

from pathlib import Path

from sealsync_client.known_chunks import ID_LEN, KnownChunks
from sealsync_client.manifest import MAX_CHUNKS

F1, F2 = "a" * 32, "b" * 32
C = [f"{i:064x}" for i in range(6)]


def test_records_per_file_replace_and_forget(tmp_path: Path) -> None:
    known = KnownChunks(tmp_path / "k")
    assert known.of([F1]) == set()  # nothing yet, no directory
    known.record(F1, C[:3])
    known.record(F2, C[2:5])
    assert known.of([F1]) == set(C[:3]) and known.of([F1, F2]) == set(C[:5])
    known.record(F1, [C[5]])  # the next version replaces the last
    assert known.of([F1]) == {C[5]}
    known.record(F1, [])
    assert known.of([F1]) == set() and not (tmp_path / "k" / F1).exists()
    assert oct((tmp_path / "k").stat().st_mode & 0o777) == oct(0o700)


def test_bad_ids_and_files_count_as_nothing(tmp_path: Path) -> None:
    known = KnownChunks(tmp_path)
    known.record("../escape", C)  # not a file id: never a path
    known.record(F1, ["not hex", "AB" * 32, C[1]])
    assert known.of(["../escape", F1]) == {C[1]}
    assert list(tmp_path.iterdir()) == [tmp_path / F1]
    (tmp_path / F2).write_bytes(b"\0" * (ID_LEN + 1))  # torn
    assert known.of([F2]) == set()
    (tmp_path / F2).write_bytes(b"\0" * ID_LEN * (MAX_CHUNKS + 1))  # more than a version has
    assert known.of([F2]) == set()
    known.record(F2, [f"{i:064x}" for i in range(MAX_CHUNKS + 1)])  # refused, nothing written
    assert known.of([F2]) == set()


def test_a_record_with_its_revision_keeps_the_servers_order_and_repeats(
        tmp_path: Path) -> None:
    """What an edit sends ranges against (chunk_delta.py): the exact list of
    exactly one revision, or nothing."""
    known = KnownChunks(tmp_path)
    listed = [C[3], C[1], C[1], C[0]]
    known.record(F1, listed, revision=7)
    assert known.base(F1, 7) == listed
    assert known.of([F1]) == {C[0], C[1], C[3]}
    assert known.base(F1, 6) is None and known.base(F1, 8) is None  # another base
    known.record(F1, [C[2]])  # a record without a revision: never a base
    assert known.base(F1, 7) is None and known.of([F1]) == {C[2]}
    known.record(F2, [C[0], "not hex"], revision=3)  # a list it cannot keep exactly
    assert known.base(F2, 3) is None and known.of([F2]) == {C[0]}


def test_a_torn_record_with_a_revision_counts_as_nothing(tmp_path: Path) -> None:
    known = KnownChunks(tmp_path)
    known.record(F1, C[:3], revision=2)
    raw = (tmp_path / F1).read_bytes()
    (tmp_path / F1).write_bytes(raw[:-1])
    assert known.base(F1, 2) is None and known.of([F1]) == set()
    (tmp_path / F1).write_bytes(b"SKC3" + raw[4:])  # not this format: read as ids alone
    assert known.base(F1, 2) is None and known.of([F1]) == set()
