"""Issue 15, path confinement on POSIX: a directory of the folder replaced
by a symbolic link to somewhere outside is never written, read for a
delete, or deleted through, whatever the server sends."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from sealsync_client.folder import Folder

from tests.client_e2e.conftest import settle

pytestmark = pytest.mark.e2e


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    out.mkdir()
    (out / "x.txt").write_text("same\n")  # what the synced file held
    return out


def _link_sub(folder: Folder, target: Path) -> None:
    """The user (or malware) swaps the synced directory for a link."""
    sub = folder.root / "sub"
    for name in os.listdir(sub):
        os.remove(sub / name)
    sub.rmdir()
    os.symlink(target, sub)


def test_a_remote_delete_never_deletes_through_a_linked_directory(
        devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    a, b = devices
    (a.root / "sub").mkdir()
    (a.root / "sub" / "x.txt").write_text("same\n")
    settle(a, b)
    outside = _outside(tmp_path)
    _link_sub(b, outside)
    os.remove(a.root / "sub" / "x.txt")
    a.engine().sync()
    b.engine().sync()
    assert (outside / "x.txt").read_text() == "same\n"


def test_a_remote_rename_or_new_file_never_writes_through_a_linked_directory(
        devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    a, b = devices
    (a.root / "sub").mkdir()
    (a.root / "sub" / "x.txt").write_text("same\n")
    settle(a, b)
    outside = _outside(tmp_path)
    _link_sub(b, outside)
    os.rename(a.root / "sub" / "x.txt", a.root / "sub" / "y.txt")  # a rename elsewhere
    (a.root / "sub" / "new.txt").write_text("new\n")
    a.engine().sync()
    b.engine().sync()
    assert sorted(os.listdir(outside)) == ["x.txt"]
    assert (outside / "x.txt").read_text() == "same\n"
    assert not (b.root / "sub").is_symlink()  # the link was moved aside, a real directory made
    assert (b.root / "sub" / "new.txt").read_text() == "new\n"
