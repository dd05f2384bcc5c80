"""The folder's own books (`.sealsync/`) under a hostile user: two passes
of one folder at once, a damaged state database or config. The client says
what is wrong in one line, never duplicates or deletes a user's file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.client_e2e.test_hostile_kills import env, pair, run, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024


def test_two_passes_of_one_folder_at_once_upload_each_file_once(
        stack: StackProcess, tmp_path: Path) -> None:
    """`sealsync watch` (or the service) running while the user types
    `sealsync sync`: both passes saw the same new files; before the pass
    lock both uploaded them, as two files each at one path."""
    one, two = pair(stack, tmp_path)
    (one / "big.bin").write_bytes(os.urandom(30 * MiB))
    (one / "note.txt").write_bytes(b"note")
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sealsync_client", "sync", str(one), "--json"],
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        time.sleep(0.3)
    reports, said = [], ""
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        reports.append(json.loads(out))
        said += err
    assert "another sync pass of" in said and "waiting for it to finish" in said
    assert sorted(sum((r["uploaded"] for r in reports), [])) == ["big.bin", "note.txt"]
    got = json.loads(run("sync", str(two), "--json").stdout)
    assert sorted(got["downloaded"]) == ["big.bin", "note.txt"]  # one file each
    settle(one, two)
    assert tree(one) == tree(two)
