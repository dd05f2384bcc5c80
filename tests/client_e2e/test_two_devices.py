"""Two devices, one account, real folders, the whole local stack.

Create, edit, rename and delete on both sides, then edit the same file on
both at once; sync until nothing changes. Both folders must end identical,
with exactly one conflict copy, and every version ever written must still
exist: in the folders, or in the server's revision history.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from sealsync_client.folder import Folder

from tests.client_e2e.conftest import settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def write(folder: Folder, rel: str, data: bytes) -> bytes:
    path = folder.root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    # A distinct mtime even on coarse clocks, so edits are never mistaken
    # for "unchanged" by the (size, mtime) shortcut of the fingerprint.
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    return data


def every_revision(folder: Folder) -> list[tuple[str, int]]:
    """(file id, revision) of every version the feed ever listed (the
    server's own deletes left out)."""
    seen: list[tuple[str, int]] = []
    cursor = 0
    while True:
        page = folder.api.changes(cursor, limit=500)
        seen += [(c["file_id"], c["revision"]) for c in page["changes"] if not c["deleted"]]
        cursor = page["cursor"]
        if not page["has_more"]:
            return seen


def every_stored_version(folder: Folder, scratch: Path) -> list[bytes]:
    """Download every revision of every file the account ever had."""
    transfer = folder.engine().transfer
    out = []
    for file_id, revision in every_revision(folder):
        version = transfer.version(file_id, revision)
        if version.manifest is None or version.manifest.tombstone:
            continue  # a delete: a signed tombstone, no content
        dest = scratch / f"{file_id}.{revision}"
        transfer.download(version, dest)
        out.append(dest.read_bytes())
    return out


def s3_objects(stack: StackProcess, prefix: str) -> list[str]:
    s = stack.state
    s3: Any = boto3.client("s3", endpoint_url=s["aws_endpoint"], region_name=s["region"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s["bucket"],
                                                             Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def test_two_devices_converge_without_losing_a_byte(
        stack: StackProcess, devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    a, b = devices
    written: list[bytes] = []  # every version any device ever had

    # -- 1. create on A: small (inline) and large (chunked) files, nested --------
    written.append(write(a, "notes.txt", b"first notes\n"))
    written.append(write(a, "docs/report.bin", os.urandom(3 * 1024 * 1024 + 17)))
    written.append(write(a, "keep.txt", b"to be deleted later\n"))
    written.append(write(a, "shared.md", b"# shared\nline one\n"))
    settle(a, b)
    assert tree(b) == tree(a) and set(tree(a)) == {
        "notes.txt", "docs/report.bin", "keep.txt", "shared.md"}

    # -- 2. edit on B, rename + delete on A, create on B ------------------------------
    written.append(write(b, "notes.txt", b"first notes\nedited on the desktop\n"))
    written.append(write(b, "from-b/new.txt", b"made on the desktop\n"))
    chunks_before = s3_objects(stack, f"chunks/{a.config.user_id}/")
    os.makedirs(a.root / "archive")
    os.rename(a.root / "docs/report.bin", a.root / "archive/report-final.bin")
    os.remove(a.root / "keep.txt")
    history = settle(a, b)
    assert any("docs/report.bin -> archive/report-final.bin" in r.renamed for r in history)
    # A rename is metadata only: no chunk was uploaded again.
    assert s3_objects(stack, f"chunks/{a.config.user_id}/") == chunks_before
    assert any("keep.txt" in r.deleted_remote for r in history)
    assert any("keep.txt" in r.deleted_here for r in history)
    assert tree(b) == tree(a)
    assert set(tree(a)) == {"notes.txt", "archive/report-final.bin", "shared.md",
                            "from-b/new.txt"}
    assert not (b.root / "docs").exists()  # the emptied folder went with the rename
    rename_id = a.state.by_path("archive/report-final.bin")
    assert rename_id is not None
    assert [r["revision"] for r in a.api.revisions(rename_id.file_id)] == [2, 1]

    # -- 3. the same file edited on both devices at once ----------------------------
    written.append(write(a, "shared.md", b"# shared\nline one\nA's line\n"))
    written.append(write(b, "shared.md", b"# shared\nline one\nB's very different line\n"))
    # ...and a delete on one side racing an edit on the other: the edit survives.
    written.append(write(b, "notes.txt", b"notes edited again on B while A deletes\n"))
    os.remove(a.root / "notes.txt")
    settle(a, b)

    final_a, final_b = tree(a), tree(b)
    assert final_a == final_b
    copies = [p for p in final_a if "conflicted copy" in p]
    assert len(copies) == 1, copies
    (copy,) = copies
    assert copy.startswith("shared (conflicted copy from ") and copy.endswith(".md")
    assert "(conflicted copy from laptop " in copy or "(conflicted copy from desktop " in copy
    assert {final_a["shared.md"], final_a[copy]} == {
        b"# shared\nline one\nA's line\n", b"# shared\nline one\nB's very different line\n"}
    assert final_a["notes.txt"] == b"notes edited again on B while A deletes\n"

    # -- not one byte lost: every version is in a folder or in the history ------------
    stored = every_stored_version(a, tmp_path / "versions")
    for data in written:
        assert data in final_a.values() or data in stored, data[:40]


def test_remote_update_never_overwrites_an_unsynced_local_edit(
        devices: tuple[Folder, Folder]) -> None:
    """B edits a file, and before B syncs, A's edit of it arrives: B's bytes
    move to a conflict copy named after B and are uploaded; nothing is lost."""
    a, b = devices
    write(a, "plan.txt", b"v1\n")
    settle(a, b)
    write(a, "plan.txt", b"v2 from A\n")
    a.engine().sync()
    write(b, "plan.txt", b"v2 from B\n")
    report = b.engine().sync()  # pulls A's edit first: B's edit must step aside
    assert [c.startswith("plan (conflicted copy from desktop ") for c in report.conflicts] \
        == [True]
    assert "plan.txt" in report.downloaded
    settle(b, a)
    final = tree(a)
    assert final == tree(b)
    assert final["plan.txt"] == b"v2 from A\n"
    copies = {p: d for p, d in final.items() if "conflicted copy from desktop" in p}
    assert list(copies.values()) == [b"v2 from B\n"]

    # A conflict of a conflict copy does not nest the marker.
    (copy,) = copies
    write(a, copy, b"copy edited on A\n")
    a.engine().sync()
    write(b, copy, b"copy edited on B\n")
    settle(b, a)
    names = [p for p in tree(a) if "conflicted copy" in p]
    assert len(names) == 2 and all(p.count("conflicted copy") == 1 for p in names), names


def test_an_expired_or_bad_token_is_refreshed_once_with_the_auth_key(
        devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    a.api.token = "not-a-valid-token"
    a.state.set("token", "not-a-valid-token")
    write(a, "after-refresh.txt", b"still syncs\n")
    assert a.engine().sync().uploaded == ["after-refresh.txt"]
    assert a.api.token != "not-a-valid-token"
    assert a.state.get("token") == a.api.token  # the fresh token is kept for next time
    settle(a, b)
    assert (b.root / "after-refresh.txt").read_bytes() == b"still syncs\n"


def test_the_same_edit_on_both_sides_or_a_lost_answer_makes_no_conflict_copy(
        devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    write(a, "same.txt", b"one\n")
    settle(a, b)
    write(a, "same.txt", b"two\n")
    write(b, "same.txt", b"two\n")
    settle(a, b)
    assert tree(a) == tree(b) == {"same.txt": b"two\n"}

    # An upload the server accepted but whose answer never reached the state
    # (a crash, a dropped connection): the next pass recognises its own bytes.
    write(a, "same.txt", b"three\n")
    entry = a.state.by_path("same.txt")
    assert entry is not None
    result = a.engine().transfer.upload(a.root, "same.txt", entry.file_id, entry.revision)
    assert result["status"] == "accepted"
    settle(a, b)
    assert tree(a) == tree(b) == {"same.txt": b"three\n"}
