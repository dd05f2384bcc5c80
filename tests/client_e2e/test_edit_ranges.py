"""An edit sent against its base, on the real stack (moto server, the API,
the commit handler) with two devices: a 1-chunk edit of a many-chunk file
sends a small POST /v1/batches, commits the full chunk list, and downloads
byte-identical on the other device; a wrong record of the base costs one
refused request, never a wrong list (docs/DESIGN.md, "Edits sent against
their base")."""
from __future__ import annotations

import json
import os
from typing import Any

import pytest
from sealsync_client.folder import KNOWN_CHUNKS, Folder
from sealsync_client.known_chunks import KnownChunks
from sealsync_client.state import meta_dir

from tests.client_e2e.conftest import settle, tree
from tests.client_e2e.test_known_chunks import edit, ids
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


def batches(folder: Folder, monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[Any], str]]:
    """Every POST /v1/batches `folder` makes from now on: (entries, outcome)."""
    calls: list[tuple[list[Any], str]] = []
    real = folder.api.create_batch

    def spy(entries: list[Any], *args: Any) -> Any:
        try:
            got = real(entries, *args)
        except Exception as exc:
            calls.append((entries, f"{type(exc).__name__}: {exc}"))
            raise
        calls.append((entries, "ok"))
        return got

    monkeypatch.setattr(folder.api, "create_batch", spy)
    return calls


def file_id_of(folder: Folder) -> str:
    (file_id,) = {row[0] for row in folder.state.db.execute("SELECT file_id FROM files")}
    return str(file_id)


def served_list(folder: Folder, file_id: str) -> list[str]:
    return [c["id"] for c in folder.api.get_file(file_id)["chunks"]]


def test_a_one_chunk_edit_of_a_big_file_sends_a_small_batch_and_syncs(
        devices: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = devices
    (a.root / "big.bin").write_bytes(os.urandom(16 * MiB))
    calls_a, calls_b = batches(a, monkeypatch), batches(b, monkeypatch)
    settle(a, b)
    file_id = file_id_of(a)
    chunks = sorted(ids(a, "big.bin"))
    assert len(chunks) > 30  # many chunks
    (first, _), = calls_a
    full = len(json.dumps(first))  # the first version: every chunk listed
    assert full > 80 * len(chunks)

    edit(a.root / "big.bin", 8 * MiB)  # 4 KiB: one or two chunks change
    settle(a, b)
    assert tree(b) == tree(a)  # downloaded byte-identical on the other device
    (entries, outcome), = calls_a[1:]
    assert outcome == "ok"
    sent = entries[0]["chunks"]
    assert any("base" in c for c in sent) and len(sent) <= 7, sent
    assert len(json.dumps(entries)) < 1000 < full // 4
    edited = sorted(ids(a, "big.bin"))
    assert served_list(a, file_id) == list(dict.fromkeys(edited))  # the full list committed

    # b's record of that version came from its download: its edit goes as ranges too
    edit(b.root / "big.bin", 2 * MiB)
    settle(b, a)
    assert tree(a) == tree(b)
    (entries, outcome), = calls_b
    assert outcome == "ok" and any("base" in c for c in entries[0]["chunks"])
    assert served_list(b, file_id) == list(dict.fromkeys(sorted(ids(b, "big.bin"))))


def test_a_wrong_record_of_the_base_costs_one_refused_request_never_a_wrong_list(
        stack: StackProcess, devices: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = devices
    (a.root / "big.bin").write_bytes(os.urandom(6 * MiB))
    settle(a, b)
    file_id = file_id_of(a)
    calls = batches(a, monkeypatch)
    known = KnownChunks(meta_dir(a.root) / KNOWN_CHUNKS)
    listed = known.base(file_id, 1)
    assert listed is not None and len(listed) > 4
    # Wrong on purpose, for the right revision: two chunks swapped.
    known.record(file_id, [listed[1], listed[0], *listed[2:]], revision=1)
    edit(a.root / "big.bin", 3 * MiB)
    settle(a, b)
    assert tree(b) == tree(a)
    (ranged, refused), (plain, ok) = calls
    assert "chunks_sha256 is not the digest" in refused and ok == "ok"
    assert any("base" in c for c in ranged[0]["chunks"])
    assert all("base" not in c for c in plain[0]["chunks"])  # the full list instead
    assert served_list(a, file_id) == list(dict.fromkeys(sorted(ids(a, "big.bin"))))
    # and the record is right again: the next edit goes as ranges at once
    edit(a.root / "big.bin", 4 * MiB)
    settle(a, b)
    assert tree(b) == tree(a)
    assert [outcome for _, outcome in calls[2:]] == ["ok"]
    assert any("base" in c for c in calls[2][0][0]["chunks"])
