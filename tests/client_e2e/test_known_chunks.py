"""known_chunks.py against the real stack: an edit of a big file asks the
server only about the chunks its last version here did not have (uploaded
or downloaded), and a stale record costs a chunk object, never data."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sealsync_client.chunking import Chunker
from sealsync_client.folder import KNOWN_CHUNKS, Folder
from sealsync_client.known_chunks import KnownChunks
from sealsync_client.pipeline import chunk_spans
from sealsync_client.state import meta_dir

from tests.client_e2e.conftest import settle, tree
from tests.client_e2e.test_packs import objects
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


def asked(folder: Folder, monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Every POST /v1/chunks/missing `folder` makes from now on: its ids."""
    calls: list[set[str]] = []
    real = folder.api.missing_chunks

    def spy(chunk_ids: list[str]) -> list[str]:
        calls.append(set(chunk_ids))
        return real(chunk_ids)

    monkeypatch.setattr(folder.api, "missing_chunks", spy)
    return calls


def ids(folder: Folder, name: str) -> set[str]:
    ring = folder.keys.root_keyring()
    return {s.id for s in chunk_spans(folder.root / name, ring, Chunker(ring.chunker))}


def edit(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at:at + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))


def test_an_edit_asks_only_about_the_chunks_its_last_version_lacked(
        devices: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = devices
    (a.root / "big.bin").write_bytes(os.urandom(4 * MiB))
    calls_a, calls_b = asked(a, monkeypatch), asked(b, monkeypatch)
    settle(a, b)
    first = ids(a, "big.bin")
    assert calls_a == [first] and len(first) > 4  # the first upload asks about all

    edit(a.root / "big.bin", 2 * MiB)
    settle(a, b)
    second = ids(a, "big.bin")
    assert tree(b) == tree(a)
    assert calls_a[1] == second - first and 0 < len(second - first) < len(second) // 2

    # b downloaded that version: its own edit asks only about what it changed.
    edit(b.root / "big.bin", MiB)
    settle(b, a)
    third = ids(b, "big.bin")
    assert tree(a) == tree(b)
    assert calls_b == [third - second] and third - second


def test_a_stale_record_costs_a_chunk_object_never_data(stack: StackProcess,
                                                        devices: Any) -> None:
    a, b = devices
    user = a.config.user_id
    (a.root / "big.bin").write_bytes(os.urandom(3 * MiB))
    settle(a, b)
    (file_id,) = {row[0] for row in a.state.db.execute("SELECT file_id FROM files")}
    edit(a.root / "big.bin", MiB)
    # Wrong on purpose: the new version's chunks recorded as stored, so the
    # batch asks about none and packs none; the server presigns them itself.
    KnownChunks(meta_dir(a.root) / KNOWN_CHUNKS).record(file_id, ids(a, "big.bin"))
    settle(a, b)
    assert tree(b) == tree(a)
    assert objects(stack, f"chunks/{user}/")  # sent as chunk objects instead
