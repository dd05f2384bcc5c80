"""Through a real pass: a new file's state records the content hash its
upload read; one that could be a rename is hashed before, as always; and a
new file that cannot be read is one error line, with nothing recorded."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sealsync_client.fingerprint import hash_file
from sealsync_client.folder import Folder
from sealsync_client.transfer import Prepared

from tests.client_e2e.test_two_devices import write

pytestmark = pytest.mark.e2e


def test_new_files_record_the_hash_of_what_was_uploaded(
        devices: tuple[Folder, Folder]) -> None:
    a, _ = devices
    write(a, "small.txt", b"tiny")
    write(a, "big.bin", os.urandom(3 * 1024 * 1024 + 5))
    write(a, "moved.bin", os.urandom(40_000))
    engine = a.engine()
    report = engine.sync()
    assert report.errors == [] and sorted(report.uploaded) == ["big.bin", "moved.bin",
                                                               "small.txt"]
    for rel in ("small.txt", "big.bin", "moved.bin"):
        entry = engine.state.by_path(rel)
        assert entry is not None and entry.fp.hash == hash_file(a.root / rel)
    os.rename(a.root / "moved.bin", a.root / "renamed.bin")  # same size: hashed first
    report = engine.sync()
    assert report.renamed == ["moved.bin -> renamed.bin"] and report.uploaded == []
    assert engine.sync().uploaded == []  # nothing left to send: the hashes hold


def test_a_new_file_that_cannot_be_read_is_one_error_and_not_recorded(
        devices: tuple[Folder, Folder]) -> None:
    a, _ = devices
    write(a, "ok.bin", os.urandom(50_000))
    write(a, "locked.bin", os.urandom(50_000))
    engine = a.engine()
    real = engine.transfer.prepare

    def prepare(root: Path, rel: str, *args: Any, **kw: Any) -> Prepared:
        if rel == "locked.bin":  # as a permission error in the middle of its read
            raise PermissionError(13, "Permission denied")
        return real(root, rel, *args, **kw)

    engine.transfer.prepare = prepare  # type: ignore[method-assign]
    report = engine.sync()
    assert report.uploaded == ["ok.bin"] and len(report.errors) == 1
    assert "locked.bin" in report.errors[0]
    assert engine.state.by_path("locked.bin") is None
    engine.transfer.prepare = real  # type: ignore[method-assign]
    assert engine.sync().uploaded == ["locked.bin"]
    entry = engine.state.by_path("locked.bin")
    assert entry is not None and entry.fp.hash == hash_file(a.root / "locked.bin")
