"""Rules of a pass, seen from inside the engine: what a pull costs in
requests (a device's own changes coming back are verified from what it
signed, not fetched again: a no-op pass after deleting 4,000 files took
235 s, fetching each tombstone), one file that cannot be read or written
never stops a pass, and hostile names arrive exactly."""
from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
import sealsync_client.placing as placing
from click.testing import CliRunner
from sealsync_client.cli import main
from sealsync_client.folder import Folder
from sealsync_client.names import shown

from tests.client_e2e.conftest import PASSPHRASE, settle, tree
from tests.client_e2e.test_two_devices import write

pytestmark = pytest.mark.e2e


def _counting(folder: Folder) -> tuple[Callable[[], int], Any]:
    """An engine whose manifest fetches are counted."""
    engine = folder.engine()
    calls: list[str] = []
    real = engine.transfer.version

    def version(file_id: str, revision: int | None = None) -> Any:
        calls.append(file_id)
        return real(file_id, revision)

    engine.transfer.version = version  # type: ignore[method-assign]
    return lambda: len(calls), engine


def test_own_uploads_and_deletes_come_back_without_a_fetch(
        devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    for i in range(24):
        write(a, f"d/{i:02}.txt", f"file {i}\n".encode())
    settle(a, b)
    for i in range(18):
        (a.root / f"d/{i:02}.txt").unlink()
    assert len(a.engine().sync().deleted_remote) == 18
    count, engine = _counting(a)
    report = engine.sync()  # the 18 tombstones come back in the feed
    assert not report.changed and not report.errors
    assert count() == 0
    count, engine = _counting(b)
    assert len(engine.sync().deleted_here) == 18
    assert count() == 18  # another device's deletes: each verified once
    assert tree(a) == tree(b) and len(tree(b)) == 6


def test_a_file_that_cannot_be_read_is_one_error_and_the_rest_syncs(
        devices: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """(As root, chmod 0 does not stop a read: the read itself fails here,
    whichever read comes first: the fingerprint's, or the upload's that
    hashes a new file on the way.)"""
    import builtins
    import io

    a, b = devices
    real = builtins.open

    def locked_open(path: Any, *args: Any, **kw: Any) -> Any:
        if str(path).endswith("locked.txt"):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kw)

    write(a, "locked.txt", b"secret")
    write(a, "open.txt", b"fine")
    monkeypatch.setattr(builtins, "open", locked_open)
    monkeypatch.setattr(io, "open", locked_open)  # pathlib's read_bytes
    report = a.engine().sync()
    assert report.uploaded == ["open.txt"]
    assert report.errors == ["locked.txt: cannot be read: permission denied; "
                             "retrying on the next sync"]
    monkeypatch.setattr(builtins, "open", real)
    monkeypatch.setattr(io, "open", real)
    assert a.engine().sync().uploaded == ["locked.txt"]
    settle(a, b)
    assert tree(b) == {"locked.txt": b"secret", "open.txt": b"fine"}


HOSTILE = ["new\nline.txt", " ", "-rf", "tab\tname", "*?<>|:\"", "CON", "aux.txt",
           "trailing. ", ".sealsync-x", "sub/.sealsync/config.json", "é" * 127,
           "emoji 🙂.txt", "\u202ertl-override.txt", "back\\slash\\", "%2e%2e"]


def test_hostile_names_reach_the_other_device_exactly(devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    for i, name in enumerate(HOSTILE):
        write(a, name, f"content {i}\n".encode())
    report = a.engine().sync()
    assert sorted(report.uploaded) == sorted(map(shown, HOSTILE)) and not report.errors
    assert "new\\nline.txt" in report.uploaded  # shown, never a raw control character
    report = b.engine().sync()
    assert not report.errors and not report.conflicts
    assert tree(b) == tree(a) and len(tree(b)) == len(HOSTILE)


def test_a_version_that_cannot_be_written_is_retried_and_listed_until_it_lands(
        devices: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk full (or any write error) on one download: one error line, the
    rest applied, the cursor moves on, `unplaced` lists it; the next pass
    places it."""
    a, b = devices
    write(a, "full.txt", b"no room for me")
    write(a, "fine.txt", b"fits")
    a.engine().sync()
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if str(dst).endswith("full.txt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(placing.os, "replace", replace)
    report = b.engine().sync()
    assert report.downloaded == ["fine.txt"]
    assert report.errors == ["full.txt: cannot be written here: no space left on device; "
                             "retrying on the next sync"]
    assert [(path, why) for _, _, path, why in b.state.unplaced()] == [
        ("full.txt", "no space left on device")]
    status = CliRunner().invoke(main, ["status", "--json", str(b.root)],
                                env={"SEALSYNC_PASSPHRASE": PASSPHRASE})
    assert [(u["path"], u["reason"]) for u in json.loads(status.output)["unplaced"]] == [
        ("full.txt", "no space left on device")]
    assert b.state.cursor == 2  # past both changes: nothing else waits behind it
    assert b.engine().sync().errors  # still failing: still listed, still one line
    monkeypatch.setattr(placing.os, "replace", real)
    assert b.engine().sync().downloaded == ["full.txt"]
    assert b.state.unplaced() == []
    assert tree(b) == tree(a)


def test_files_in_a_folder_that_cannot_be_listed_are_not_deleted(
        devices: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """(As root, chmod 0 does not stop a listing: the listing itself fails.)"""
    import sealsync_client.scan as scan_mod

    a, b = devices
    write(a, "locked/kept.txt", b"must not be deleted")
    write(a, "open.txt", b"fine")
    settle(a, b)
    real = os.scandir

    def scandir(path: Any) -> Any:
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(scan_mod.os, "scandir", scandir)
    report = a.engine().sync()
    assert not report.deleted_remote and report.skipped == ["locked"]
    monkeypatch.undo()
    settle(a, b)
    assert tree(b)["locked/kept.txt"] == b"must not be deleted"


def test_a_pass_clears_what_an_interrupted_one_left_in_tmp(
        devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    write(a, "x.txt", b"x")
    settle(a, b)
    tmp = b.root / ".sealsync" / "tmp"
    (tmp / ("f" * 32)).write_bytes(b"a download finished but never moved into place")
    (tmp / ("e" * 32 + ".part")).write_bytes(b"a part no version wants")
    b.engine().sync()
    assert list(tmp.iterdir()) == []
