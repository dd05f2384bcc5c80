"""What a user sees of version retention (docs/CLIENT.md "How long old
versions stay"), on the local stack with the CLI: after the `retention` job
(fired through `python -m local.scheduler` as if 31 days had passed),
`history` marks the superseded revision expired, `restore` of it is one
line and exit 7, the head still restores and syncs, a device joining later
verifies the whole history (the expired revision's manifest included) and
gets the file, and the quota counter dropped by that revision's size."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sealsync_client.api import Expired
from sealsync_client.folder import Folder, init_folder

from tests.client_e2e.conftest import FAST as FAST_COST
from tests.client_e2e.conftest import PASSPHRASE, settle
from tests.client_e2e.test_cli import FAST, as_json, sealsync
from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
DAY = 24 * 3600


def fire(stack: StackProcess, job: str, at: int) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-m", "local.scheduler", "fire", job, "--at",
                          str(at), "--state-file", str(stack.state_file)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout))


def test_an_expired_revision_is_shown_refused_in_one_line_and_skipped_by_a_new_device(
        stack: StackProcess, tmp_path: Path) -> None:
    api = stack.state["api"]
    one, three = tmp_path / "one", tmp_path / "three"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    first, second = os.urandom(200_000), os.urandom(150_000)
    (one / "photo.raw").write_bytes(first)
    as_json("sync", str(one))
    (one / "photo.raw").write_bytes(second)
    assert as_json("sync", str(one))["uploaded"] == ["photo.raw"]
    before = as_json("usage", str(one))

    report = fire(stack, "retention", int(time.time()) + 31 * DAY)
    assert report["expired"] >= 1 and report["job"] == "retention"

    revs = as_json("history", str(one), "photo.raw")["revisions"]
    assert [(r["revision"], r["expired_at"] is not None) for r in revs] == [(2, False),
                                                                          (1, True)]
    assert revs[1]["size"] == len(first)  # the manifest still opens: name, size, device
    assert "expired" in sealsync("history", str(one), "photo.raw").stdout
    refused = sealsync("restore", str(one), "photo.raw", "--revision", "1", check=7)
    assert refused.stderr.startswith("sealsync: error: revision 1 of photo.raw expired on ")
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert (one / "photo.raw").read_bytes() == second  # nothing touched

    joined = as_json("init", "--server", api, "--join", account["user_id"], "--device",
                     "three", *FAST, str(three), secret_key=account["secret_key"])
    assert joined["user_id"] == account["user_id"]
    pulled = as_json("sync", str(three), secret_key=account["secret_key"])
    assert pulled["downloaded"] == ["photo.raw"] and not pulled["errors"]
    assert (three / "photo.raw").read_bytes() == second
    after = as_json("usage", str(one))
    assert after["stored_bytes"] < before["stored_bytes"] - len(first)


def test_a_device_whose_feed_page_ends_on_an_expired_revision_skips_it_and_loses_nothing(
        stack: StackProcess, devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    """Pages of one change: the expired revision is a page's newest of its
    file, so the pull must verify it and not try to download it (a later
    page has the head)."""
    a, _b = devices
    first, second = os.urandom(120_000), os.urandom(90_000)
    (a.root / "scan.pdf").write_bytes(first)
    settle(a)
    (a.root / "scan.pdf").write_bytes(second)
    settle(a)
    assert fire(stack, "retention", int(time.time()) + 31 * DAY)["expired"] >= 1
    c = init_folder(tmp_path / "late", stack.state["api"], PASSPHRASE, device_name="late",
                    join_user_id=a.config.user_id, cost=FAST_COST, secret_key=a.secret_key)
    try:
        real = c.api.changes
        c.api.changes = lambda cursor, limit=500, wait_s=0: real(cursor, 1, wait_s)  # type: ignore[method-assign]
        report = c.engine().sync()
        assert not report.errors, report.errors
        assert (c.root / "scan.pdf").read_bytes() == second
    finally:
        c.close()


def test_a_server_claiming_the_newest_version_expired_is_reported_not_believed(
        stack: StackProcess, devices: tuple[Folder, Folder]) -> None:
    """The head never expires: a 410 for the newest revision the feed lists
    is verified (its manifest is real) but reported as withheld, and the
    device keeps what it had."""
    a, b = devices
    (a.root / "notes.txt").write_bytes(os.urandom(70_000))
    settle(a, b)
    kept = (b.root / "notes.txt").read_bytes()
    (a.root / "notes.txt").write_bytes(os.urandom(60_000))
    settle(a)
    file_id = a.state.by_path("notes.txt").file_id
    real = b.api.get_file

    def lying(fid: str, revision: int | None = None) -> dict[str, Any]:
        body = real(fid, revision)
        if fid == file_id and revision == 2:
            gone = {k: v for k, v in body.items() if k not in ("chunks", "packs")}
            raise Expired("expired", 410, "expired", {**gone, "expired_at": 1})
        return body

    b.api.get_file = lying  # type: ignore[method-assign]
    report = b.engine().sync()
    assert any("the server says revision 2, the newest it listed, has expired" in e
               for e in report.errors), report.errors
    assert (b.root / "notes.txt").read_bytes() == kept
