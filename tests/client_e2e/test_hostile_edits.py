"""Edits sent as ranges of their base in unusual shapes, on the real stack
with two devices: truncation, appends, first and last chunk changed,
simultaneous edits, an edit after a rename / a restore / a type change.
Every tree ends identical and every edit survives (head or conflict copy)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sealsync_client.folder import Folder

from tests.client_e2e.conftest import settle, tree

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


def contents(folder: Folder) -> set[bytes]:
    return set(tree(folder).values())


def test_truncate_append_first_and_last_chunk(devices: Any) -> None:
    a, b = devices
    big = os.urandom(6 * MiB)
    (a.root / "big.bin").write_bytes(big)
    settle(a, b)
    steps = [big[:2 * MiB],                      # truncated to a prefix
             big[:2 * MiB] + os.urandom(3 * MiB),  # appended to
             ]
    last = steps[-1]
    steps.append(os.urandom(4096) + last[4096:-4096] + os.urandom(4096))  # first+last
    steps.append(b"")                              # emptied
    steps.append(big)                              # back to the first version
    steps.append(big + big)                        # repeated content
    for i, data in enumerate(steps):
        writer = (a, b)[i % 2]
        (writer.root / "big.bin").write_bytes(data)
        settle(a, b)
        assert tree(a) == tree(b) == {"big.bin": data}, i


def test_same_file_edited_on_two_devices_at_once(devices: Any) -> None:
    a, b = devices
    big = os.urandom(4 * MiB)
    (a.root / "f.bin").write_bytes(big)
    settle(a, b)
    va = big[:MiB] + os.urandom(4096) + big[MiB + 4096:]
    vb = big[:3 * MiB] + os.urandom(4096) + big[3 * MiB + 4096:]
    (a.root / "f.bin").write_bytes(va)
    (b.root / "f.bin").write_bytes(vb)
    settle(a, b)
    assert tree(a) == tree(b)
    assert {va, vb} <= contents(a)
    # and edit the winner again on the loser's device: ranges against its download
    name = next(n for n, d in tree(b).items() if n == "f.bin")
    data = tree(b)[name]
    vc = data[:2 * MiB] + os.urandom(4096) + data[2 * MiB + 4096:]
    (b.root / name).write_bytes(vc)
    settle(b, a)
    assert tree(a) == tree(b) and vc in contents(a)


def test_edit_after_the_other_device_renamed(devices: Any) -> None:
    a, b = devices
    big = os.urandom(3 * MiB)
    (a.root / "old.bin").write_bytes(big)
    settle(a, b)
    os.rename(b.root / "old.bin", b.root / "new.bin")
    settle(b)
    va = big[:MiB] + os.urandom(4096) + big[MiB + 4096:]
    (a.root / "old.bin").write_bytes(va)
    settle(a, b)
    assert tree(a) == tree(b)
    assert va in contents(a)


def test_edit_on_both_after_a_rename_on_one(devices: Any) -> None:
    a, b = devices
    big = os.urandom(3 * MiB)
    (a.root / "old.bin").write_bytes(big)
    settle(a, b)
    os.rename(b.root / "old.bin", b.root / "new.bin")
    vb = big[:2 * MiB] + os.urandom(100) + big[2 * MiB + 100:]
    (b.root / "new.bin").write_bytes(vb)
    va = big[:MiB] + os.urandom(4096) + big[MiB + 4096:]
    (a.root / "old.bin").write_bytes(va)
    settle(a, b)
    assert tree(a) == tree(b)
    assert {va, vb} <= contents(a)


def test_file_replaced_by_directory_and_back(devices: Any) -> None:
    a, b = devices
    big = os.urandom(2 * MiB)
    (a.root / "x").write_bytes(big)
    settle(a, b)
    (a.root / "x").unlink()
    (a.root / "x").mkdir()
    (a.root / "x" / "inner.txt").write_bytes(b"inner")
    settle(a, b)
    assert tree(a) == tree(b) == {"x/inner.txt": b"inner"}
    (b.root / "x" / "inner.txt").unlink()
    (b.root / "x").rmdir()
    vb = big[:MiB] + os.urandom(10) + big[MiB + 10:]
    (b.root / "x").write_bytes(vb)
    settle(b, a)
    assert tree(a) == tree(b) == {"x": vb}
    vb2 = vb[:4096] + os.urandom(4096) + vb[8192:]
    (a.root / "x").write_bytes(vb2)
    settle(a, b)
    assert tree(a) == tree(b) == {"x": vb2}


def test_edit_after_restore(devices: Any, tmp_path: Path) -> None:
    from sealsync_client.restore import restore_revision  # noqa: F401
    a, b = devices
    v1 = os.urandom(3 * MiB)
    (a.root / "r.bin").write_bytes(v1)
    settle(a, b)
    v2 = v1[:MiB] + os.urandom(4096) + v1[MiB + 4096:]
    (a.root / "r.bin").write_bytes(v2)
    settle(a, b)
    (file_id,) = {r[0] for r in a.state.db.execute("SELECT file_id FROM files")}
    restore_revision(a.engine(), file_id, 1, a.root / "r.bin", "r.bin")
    settle(a, b)
    assert tree(a) == tree(b) == {"r.bin": v1}
    v3 = v1[:2 * MiB] + os.urandom(4096) + v1[2 * MiB + 4096:]
    (b.root / "r.bin").write_bytes(v3)
    settle(b, a)
    assert tree(a) == tree(b) == {"r.bin": v3}
    v4 = v3[:4096] + os.urandom(4096) + v3[8192:]
    (a.root / "r.bin").write_bytes(v4)
    settle(a, b)
    assert tree(a) == tree(b) == {"r.bin": v4}


def test_repeated_chunks_edited_as_ranges(devices: Any) -> None:
    """Files whose chunk list repeats ids (zeros, a block written twice):
    ranges of a base with repeats, edited on both devices in turn."""
    a, b = devices
    block = os.urandom(MiB)
    shapes = [bytes(8 * MiB), block * 6, bytes(2 * MiB) + block * 3 + bytes(2 * MiB),
              block * 3 + os.urandom(10) + block * 3, bytes(8 * MiB)]
    for i, data in enumerate(shapes):
        writer = (a, b)[i % 2]
        (writer.root / "rep.bin").write_bytes(data)
        settle(a, b)
        assert tree(a) == tree(b) == {"rep.bin": data}, i
