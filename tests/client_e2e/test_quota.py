"""Over the storage quota, end to end: a local stack with a tiny quota
(SEALSYNC_QUOTA_BYTES), the real CLI in a subprocess.

The server refuses the uploads with 413 over_quota; `sealsync sync` keeps
every local file, says so in one line for the pass (no traceback, no line
per file), still downloads and still deletes, and exits 6. Freeing space
lets the next pass upload."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client_e2e.test_cli import FAST, as_json, sealsync
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
QUOTA = 200_000


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    sp = StackProcess(tmp_path_factory.mktemp("quota-stack"),
                      env={"SEALSYNC_QUOTA_BYTES": str(QUOTA)})
    try:
        sp.wait_ready()
        yield sp
    finally:
        sp.stop()


def test_over_quota_keeps_the_files_reports_once_and_still_syncs_the_rest(
        small_stack: StackProcess, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", small_stack.state["api"], *FAST, str(one))
    as_json("init", "--server", small_stack.state["api"], "--join", account["user_id"],
            *FAST, str(two), secret_key=account["secret_key"])
    (one / "small.txt").write_text("small\n")
    (one / "gone.txt").write_text("to be deleted\n")
    assert sorted(as_json("sync", str(one))["uploaded"]) == ["gone.txt", "small.txt"]

    # A pass that would pass the quota: two new files (one of them too big),
    # a delete, and a file from the other device to download.
    (one / "big.bin").write_bytes(os.urandom(300_000))
    (one / "notes.txt").write_text("notes\n")
    (one / "gone.txt").unlink()
    (two / "theirs.txt").write_text("from the other device\n")
    as_json("sync", str(two))
    done = sealsync("sync", str(one), check=6)
    assert "Traceback" not in done.stdout + done.stderr
    quota_lines = [line for line in done.stdout.splitlines() if "over quota" in line]
    assert len(quota_lines) == 1, done.stdout
    assert "2 files kept here, not uploaded" in quota_lines[0]
    assert "storage quota" in quota_lines[0]
    assert "error:" not in done.stdout and done.stderr == "", (done.stdout, done.stderr)
    assert (one / "big.bin").stat().st_size == 300_000  # kept, untouched
    assert (one / "notes.txt").read_text() == "notes\n"
    assert (one / "theirs.txt").read_text() == "from the other device\n"  # downloaded
    as_json("sync", str(two))
    assert not (two / "gone.txt").exists()  # the delete went through, over quota

    # --json: the same pass as a document, the same exit code
    got = sealsync("sync", "--json", str(one), check=6)
    report = json.loads(got.stdout)
    assert sorted(report["over_quota"]) == ["big.bin", "notes.txt"]
    assert "quota" in report["quota_message"] and report["errors"] == []
    assert sorted(as_json("status", str(one))["new"]) == ["big.bin", "notes.txt"]

    # freeing space (here: not syncing the big file) lets the rest upload
    (one / "big.bin").unlink()
    assert as_json("sync", str(one))["uploaded"] == ["notes.txt"]
    as_json("sync", str(two))
    assert (two / "notes.txt").read_text() == "notes\n"
