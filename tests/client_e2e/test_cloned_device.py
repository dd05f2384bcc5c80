"""A device's folder copied, `.sealsync/` and all, to a second machine: both
copies sign with one device id and one counter. Only holders of the account
key can sign, so this is not the server misbehaving; it used to stop every
other device's passes for good ("signed two different versions with counter
N"). Now the other devices refuse that one feed entry, loudly, and keep
syncing; the copies are told to join again (test_hostile_state.py follows
that advice through)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sealsync_client.engine import Report
from sealsync_client.folder import Folder, open_folder
from sealsync_client.history import OwnPastUnknown

from tests.client_e2e.conftest import PASSPHRASE, settle, tree

pytestmark = pytest.mark.e2e


def test_a_copied_device_folder_refuses_one_entry_and_wedges_no_other_device(
        devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    a, b = devices
    (a.root / "shared.txt").write_bytes(b"before the copy")
    settle(a, b)
    shutil.copytree(a.root, tmp_path / "copy")
    copy = open_folder(tmp_path / "copy", PASSPHRASE)
    try:
        # Both copies upload before either pulls: one counter, two versions.
        (a.root / "from-a.txt").write_bytes(b"written on the original")
        (copy.root / "from-copy.txt").write_bytes(b"written on the copy")
        a.engine().push(Report())
        copy.engine().push(Report())
        (a.root / "later.txt").write_bytes(b"an ordinary edit after it")
        a.engine().push(Report())

        report = b.engine().sync()  # the bystander: not wedged
        (line,) = report.errors
        assert "from-copy.txt" not in tree(b) and "refused and skipped" in line, line
        assert "counter" in line and "join again" in line, line
        assert tree(b)["from-a.txt"] == b"written on the original"
        assert tree(b)["later.txt"] == b"an ordinary edit after it"
        assert b.state.refused()
        (b.root / "shared.txt").write_bytes(b"b keeps working")
        assert not b.engine().sync().errors  # and uploads; the next pass is clean

        with pytest.raises(OwnPastUnknown):  # the copy learns it must join again
            copy.engine().sync()
    finally:
        copy.close()
