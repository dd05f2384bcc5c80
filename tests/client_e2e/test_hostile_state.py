"""The folder's own books (`.sealsync/`) under a hostile user: two passes
of one folder at once, a damaged state database or config. The client says
what is wrong in one line, never duplicates or deletes a user's file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.client_e2e.conftest import settle as fsettle
from tests.client_e2e.conftest import tree as ftree
from tests.client_e2e.test_hostile_kills import FAST, env, pair, pair_with_key, run, settle, tree
from tests.client_e2e.test_known_chunks import ids
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


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_state_database_is_one_line_and_its_advice_works(
        stack: StackProcess, tmp_path: Path, damage: str) -> None:
    one, two, secret_key = pair_with_key(stack, tmp_path)
    (one / "a.txt").write_bytes(b"first")
    (one / "big.bin").write_bytes(os.urandom(3 * MiB))
    settle(one, two)
    (two / "b.txt").write_bytes(b"two's own upload")  # signed by this device before
    settle(two, one)
    (two / "a.txt").write_bytes(b"edited on two, not synced")
    db = two / ".sealsync" / "state.db"
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    else:
        with open(db, "r+b") as f:
            f.truncate(4096)
    for command in ("status", "sync"):
        done = run(command, str(two), check=2)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "unexpected error" not in lines[0], done.stderr
        assert f"{db} is damaged" in lines[0] and "join it as a new device" in lines[0]
    assert (two / "a.txt").read_bytes() == b"edited on two, not synced"  # nothing touched
    # The advice, followed (moving only state.db aside is not enough: this
    # device then cannot recognise its own earlier upload, b.txt).
    command = lines[0].split("join it as a new device: ")[1].split(" (")[0].split()
    assert command[:2] == ["sealsync", "init"] and command[-1] == str(two)
    (two / ".sealsync").rename(tmp_path / "two.sealsync.damaged")
    run(*command[1:], "--device", "two-again", *FAST, secret_key=secret_key)
    settle(two, one)
    assert tree(one) == tree(two)
    assert {b"edited on two, not synced", b"first"} <= set(tree(one).values())  # both kept


@pytest.mark.parametrize("declaration", ["garbage{", "[1, 2]", '{"pack_id": 5}',
                                         '{"pack_id": "ab", "size": 1, "blobs": [7]}'])
def test_a_damaged_sent_pack_record_never_wedges_uploads(devices: Any,
                                                         declaration: str) -> None:
    """A row of `sent_packs` (packs PUT before a kill, declared again by
    the next batch) that does not parse stopped every upload of every pass
    with a JSON error; it is dropped instead (the pack, if any, is sent
    again)."""
    a, b = devices
    a.state.db.execute("INSERT INTO sent_packs VALUES (?, ?, ?)",
                       ("ab" * 16, declaration, time.time_ns()))
    (a.root / "new.txt").write_bytes(b"new")
    (a.root / "big.bin").write_bytes(os.urandom(3 * MiB))
    reports = fsettle(a, b)
    assert reports[0].uploaded == ["big.bin", "new.txt"]
    assert ftree(b) == ftree(a)
    assert a.state.sent_packs() == []


def test_a_remembered_pack_the_server_lost_costs_one_pass_never_a_wedge(
        devices: Any) -> None:
    """A pack PUT before a kill and remembered in `sent_packs` whose
    declaration the server refuses (400: here its blob lengths do not match
    the entry's chunks): the batch fails once; the pack is then forgotten
    and the next pass sends the chunks again. Before, it was declared again
    by every pass: the file (and its whole batch) never uploaded."""
    a, b = devices
    (a.root / "big.bin").write_bytes(os.urandom(3 * MiB))
    chunk_ids = sorted(ids(a, "big.bin"))
    a.state.add_sent_pack({"pack_id": os.urandom(16).hex(), "size": 1000 * len(chunk_ids),
                           "blobs": [{"chunk": c, "offset": 1000 * i, "length": 1000}
                                     for i, c in enumerate(chunk_ids)]})
    first = a.engine().sync()
    assert first.uploaded == [] and len(first.errors) == 1, first
    assert a.state.sent_packs() == []  # refused once: not offered again
    fsettle(a, b)
    assert ftree(b) == ftree(a)


def test_books_restored_from_a_backup_say_so_and_the_advice_works(
        stack: StackProcess, tmp_path: Path) -> None:
    """A `.sealsync/` restored from yesterday's backup (or copied along with
    the folder) has no record of this device's later uploads. That was
    reported as "the server is misbehaving" alone; the message now names
    the likely cause and the cure, which works."""
    one, two, secret_key = pair_with_key(stack, tmp_path)
    (one / "a.txt").write_bytes(b"first")
    settle(one, two)
    backup = tmp_path / "backup"
    shutil.copytree(two / ".sealsync", backup)
    (two / "b.txt").write_bytes(b"uploaded after the backup")
    settle(two, one)
    shutil.rmtree(two / ".sealsync")
    shutil.copytree(backup, two / ".sealsync")  # the restore
    (two / "a.txt").write_bytes(b"edited after the restore")
    done = run("sync", str(two), check=4)
    line, = done.stderr.strip().splitlines()
    assert "restored from a backup" in line and "join again as a new device" in line, line
    assert (two / "a.txt").read_bytes() == b"edited after the restore"
    (two / ".sealsync").rename(tmp_path / "two.sealsync.old")
    user_id = json.loads((backup / "config.json").read_text())["user_id"]
    run("init", "--server", stack.state["api"], "--join", user_id, "--device", "two-again",
        *FAST, str(two), secret_key=secret_key)
    settle(two, one)
    assert tree(one) == tree(two)
    assert {b"first", b"edited after the restore",
            b"uploaded after the backup"} <= set(tree(one).values())


def test_a_pass_lock_that_cannot_be_opened_is_one_line(stack: StackProcess,
                                                       tmp_path: Path) -> None:
    one, _ = pair(stack, tmp_path)
    (one / ".sealsync" / "pass.lock").mkdir()
    done = run("sync", str(one), check=4)
    assert done.stderr.strip().splitlines() == [
        f"sealsync: error: cannot open {one / '.sealsync' / 'pass.lock'}: Is a directory"]
