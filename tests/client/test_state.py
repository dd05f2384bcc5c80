"""The local state: fingerprints that see every edit, names that are bytes,
and folders synced by an older client. Real files, real SQLite."""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from sealsync_client.fingerprint import RACY_NS, Fingerprint, fingerprint
from sealsync_client.manifest import Manifest
from sealsync_client.names import from_bytes
from sealsync_client.scan import scan
from sealsync_client.state import Entry, State

OLD = 1_700_000_000_000_000_000  # an mtime far from now: not racy


def _settled(path: Path) -> Fingerprint:
    """A fingerprint as a pass would record it, once the file is old news."""
    os.utime(path, ns=(OLD, OLD))
    fp = fingerprint(path)
    # ctime cannot be set back; pretend the record is RACY_NS older than it is
    return Fingerprint(fp.size, os.stat(path).st_mtime_ns, fp.hash, fp.ctime_ns, fp.ino)


def test_an_edit_keeping_size_and_mtime_is_seen_through_the_ctime(tmp_path: Path) -> None:
    f = tmp_path / "f.txt"
    f.write_bytes(b"version 1\n")
    known = _settled(f)
    assert fingerprint(f, known) is known  # unchanged: the hash is reused
    time.sleep(0.01)
    f.write_bytes(b"version 2\n")
    os.utime(f, ns=(OLD, OLD))
    assert os.stat(f).st_size == known.size and os.stat(f).st_mtime_ns == known.mtime_ns
    assert fingerprint(f, known).hash != known.hash


def test_a_swap_of_two_names_is_seen_through_the_inode(tmp_path: Path) -> None:
    c, d = tmp_path / "c", tmp_path / "d"
    c.write_bytes(b"cccc")
    d.write_bytes(b"dddd")
    fc, fd = _settled(c), _settled(d)
    os.rename(c, tmp_path / "x")
    os.rename(d, c)
    os.rename(tmp_path / "x", d)
    fake = Fingerprint(fc.size, fc.mtime_ns, fc.hash, os.stat(c).st_ctime_ns, fc.ino)
    assert fingerprint(c, fake).hash == fd.hash  # same ctime, other inode: re-hashed


def test_a_fresh_fingerprint_is_smudged_and_hashed_again(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"just written")
    fp = fingerprint(f)
    assert fp.mtime_ns == -1  # taken within RACY_NS of the write: not trusted
    assert fingerprint(f, fp) is not fp
    assert RACY_NS >= 1_000_000_000


def test_names_that_are_not_utf8_are_stored_and_found(tmp_path: Path) -> None:
    state = State(tmp_path)
    raw = from_bytes(b"dir/caf\xe9.txt")
    fp = Fingerprint(1, 2, "h", 3, 4)
    state.put(Entry(raw, "f" * 32, 1, fp))
    state.put(Entry("cafe\u0301.txt", "e" * 32, 1, fp))  # NFD here, NFC stored
    assert state.by_path(raw) == Entry(raw, "f" * 32, 1, fp)
    assert state.by_file_id("e" * 32).stored == "caf\u00e9.txt"  # type: ignore[union-attr]
    assert set(state.entries()) == {raw, "cafe\u0301.txt"}
    state.set_unplaced("d" * 32, 3, raw, "why")
    assert state.unplaced() == [("d" * 32, 3, raw, "why")]
    state.put(Entry("other", "d" * 32, 3, fp))  # placed at last: no longer listed
    assert state.unplaced() == []


def test_a_folder_synced_by_the_previous_client_is_migrated(tmp_path: Path) -> None:
    (tmp_path / ".sealsync").mkdir()
    db = sqlite3.connect(tmp_path / ".sealsync" / "state.db")
    db.execute("CREATE TABLE files (path TEXT PRIMARY KEY, file_id TEXT NOT NULL UNIQUE, "
               "revision INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
               "hash TEXT NOT NULL, dirty INTEGER NOT NULL DEFAULT 0)")
    db.execute("INSERT INTO files VALUES ('notes/ü.txt', ?, 4, 10, 20, 'h', 0)", ("a" * 32,))
    db.commit()
    db.close()
    state = State(tmp_path)
    entry = state.by_path("notes/ü.txt")
    assert entry == Entry("notes/ü.txt", "a" * 32, 4, Fingerprint(10, 20, "h", 0, 0))
    State(tmp_path)  # a second open changes nothing


def test_a_manifest_carries_a_non_utf8_path_byte_for_byte() -> None:
    raw = from_bytes(b"caf\xe9.txt")
    m = Manifest(raw, 0, 0, 0o100644, "dev", inline=b"")
    assert m.path == raw


def test_the_scan_lists_what_it_does_not_sync(tmp_path: Path) -> None:
    (tmp_path / ".sealsync").mkdir()
    (tmp_path / ".sealsync-notes").write_text("mine")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".sealsync").mkdir()
    (tmp_path / "sub" / ".sealsync" / "x").write_text("a user's")
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "pipe")
    found = scan(tmp_path)
    assert set(found.files) == {".sealsync-notes", "sub/.sealsync/x"}
    assert [(p, r.split(":")[0]) for p, r in found.skipped] == [
        ("empty", "empty directory"), ("link", "symbolic link"), ("pipe", "FIFO")]


def test_sent_packs_are_remembered_dropped_and_capped(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".sealsync").mkdir(exist_ok=True)
    state = State(tmp_path)
    monkeypatch.setattr(State, "SENT_PACKS_KEPT", 3)
    decls = [{"pack_id": f"{i:032x}", "size": 65536,
              "blobs": [{"chunk": f"{i:064x}", "offset": 5, "length": 100}]} for i in range(5)]
    for d in decls:
        state.add_sent_pack(d)
    assert state.sent_packs() == decls[2:]  # the oldest beyond the cap are forgotten
    state.drop_sent_packs([decls[3]["pack_id"], "no such pack"])
    assert State(tmp_path).sent_packs() == [decls[2], decls[4]]  # and it persists
