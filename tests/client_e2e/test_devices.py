"""Issue 15 on two real devices against the local stack: `sealsync devices`
and `revoke` through the CLI, and a feed entry no device can verify being
skipped loudly while everything else keeps syncing."""
from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from sealsync_client.cli import main
from sealsync_client.folder import Folder

from chalicelib.adapters.batches import Batches
from chalicelib.adapters.meta import Meta
from chalicelib.core.batch import BatchRecord, Entry
from chalicelib.core.decide import PENDING
from chalicelib.core.ids import bundle_key, new_id
from tests.client_e2e.conftest import PASSPHRASE, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"SEALSYNC_PASSPHRASE": PASSPHRASE})
    return result.exit_code, result.output


def write(folder: Folder, rel: str, data: bytes) -> None:
    path = folder.root / rel
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def test_devices_are_listed_with_their_names_and_revoked(
        devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    code, out = cli("devices", "list", "--json", str(a.root))
    assert code == 0, out
    rows = {d["device_id"]: d for d in json.loads(out)["devices"]}
    assert rows[a.config.device_id]["name"] == "laptop" and rows[a.config.device_id]["current"]
    assert rows[b.config.device_id]["name"] == "desktop"
    code, out = cli("devices", str(a.root))  # the short form lists too
    assert code == 0 and "laptop" in out and "desktop" in out and "active" in out, out

    write(a, "before.txt", b"synced before the revocation\n")
    settle(a, b)
    code, out = cli("devices", "revoke", str(a.root), b.config.device_id[:8])
    assert code == 0 and f"revoked {b.config.device_id} desktop" in out, out
    # b can neither upload nor (the authorizer is not cached locally) read
    write(b, "after.txt", b"made on the revoked device\n")
    code, out = cli("sync", str(b.root))
    assert code == 4 and "revoked" in out, out
    assert (b.root / "after.txt").exists()  # nothing is lost on b
    code, out = cli("devices", str(a.root))
    assert "revoked" in out, out
    code, out = cli("devices", "revoke", str(a.root), "ffff")
    assert code == 4 and "names no device" in out, out
    # a carries on
    write(a, "still.txt", b"a still syncs\n")
    settle(a)
    assert "after.txt" not in tree(a)


def garbage_in_the_feed(stack: StackProcess, folder: Folder, file_id: str,
                        revision: int) -> None:
    """What a leaked token could commit before the server checked device
    signatures (or a provider can write): an unsigned server tombstone as
    the file's next revision, straight into the store."""
    s = stack.state
    db = boto3.client("dynamodb", endpoint_url=s["aws_endpoint"], region_name=s["region"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    now, user = int(time.time()), folder.config.user_id
    rec = BatchRecord(new_id(), user, folder.config.device_id,
                      (Entry(file_id, revision - 1, 0, True, (), 0),), PENDING, now)
    batches = Batches(db, s["table"])
    batches.create(rec, now + 3600)
    last = Meta(db, s["table"]).feed_head(user)
    batches.commit_group(rec, {0: revision}, {0: last + 1}, last,
                         bundle_key(user, rec.batch_id), [0], now)


def refused(folder: Folder) -> list[dict[str, Any]]:
    code, out = cli("status", "--json", str(folder.root))
    assert code == 0, out
    rows: list[dict[str, Any]] = json.loads(out)["refused"]
    return rows


def test_a_feed_entry_no_device_signed_is_skipped_loudly(
        stack: StackProcess, devices: tuple[Folder, Folder]) -> None:
    a, b = devices
    write(a, "note.txt", b"first\n")
    write(a, "other.txt", b"unrelated\n")
    settle(a, b)
    entry = b.state.by_path("note.txt")
    assert entry is not None
    garbage_in_the_feed(stack, a, entry.file_id, entry.revision + 1)
    write(a, "new.txt", b"made after the garbage\n")
    # a refuses the entry and still pushes its new file in the same pass
    report = a.engine().sync()
    assert any("refused and skipped" in e for e in report.errors), report.errors
    assert report.uploaded == ["new.txt"]
    # b too: exit 1 (a per-file error), says why, and gets everything else
    code, out = cli("sync", str(b.root))
    assert code == 1 and "refused and skipped" in out and "no device signed" in out, out
    assert (b.root / "new.txt").read_bytes() == b"made after the garbage\n"
    assert (b.root / "note.txt").read_bytes() == b"first\n"  # the delete was not applied
    rows = refused(b)
    assert [(r["file_id"], r["revision"], r["path"]) for r in rows] == [
        (entry.file_id, entry.revision + 1, "note.txt")]
    code, out = cli("status", str(b.root))
    assert "refused   change" in out and "note.txt" in out, out
    # the next pass is clean: the entry stays skipped, nothing stalls
    code, out = cli("sync", str(b.root))
    assert code == 0, out
    # an edit supersedes the refused revision, and reaches the other device
    write(b, "note.txt", b"second, superseding the garbage\n")
    settle(b, a)
    assert tree(a) == tree(b)
    assert (a.root / "note.txt").read_bytes() == b"second, superseding the garbage\n"
    assert a.engine().history.fingerprint() == b.engine().history.fingerprint()
