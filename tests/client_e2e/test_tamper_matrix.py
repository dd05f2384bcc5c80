"""The tamper matrix (invariant 8): a malicious server between the client
and the local stack, one attack per test.

The double patches `Api`, the client's HTTP client, for one device (the
victim): whatever that device asks, the hostile server answers from the
real stack's data, bent. The victim then runs `sealsync sync` (the CLI, in
process, so the patch reaches it). Each attack must end the pass with exit
code 4 and a message naming what was caught. An attack on the feed or the
history leaves the victim's folder, its synced files and its feed cursor
exactly as they were; one on a single version's content (ciphertext swapped
or cut) refuses that file alone, keeps its last verified content and retries
it every pass, while the rest of the pass goes on (`contained`).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from sealsync_client.api import Api
from sealsync_client.cli import main
from sealsync_client.folder import Folder

from tests.client_e2e.conftest import PASSPHRASE, settle, tree

pytestmark = pytest.mark.e2e
Body = dict[str, Any]
REAL = {name: getattr(Api, name) for name in ("changes", "get_file", "get_blob")}


def write(folder: Folder, rel: str, data: bytes) -> None:
    path = folder.root / rel
    path.write_bytes(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def snapshot(folder: Folder) -> tuple[dict[str, bytes], Any, int]:
    return tree(folder), folder.state.entries(), folder.state.cursor


def sync_cli(folder: Folder) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["sync", str(folder.root)],
                                env={"SEALSYNC_PASSPHRASE": PASSPHRASE})
    return result.exit_code, result.output


class Hostile:
    """Installs a bent `Api` method for one device; others get the real one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, victim: Folder) -> None:
        self.monkeypatch, self.victim = monkeypatch, victim.config.device_id

    def bend(self, name: str, evil: Callable[..., Any]) -> None:
        real, victim = REAL[name], self.victim

        def method(api: Api, *args: Any, **kw: Any) -> Any:
            if api.login is None or api.login.device_id != victim:
                return real(api, *args, **kw)
            return evil(api, *args, **kw)
        self.monkeypatch.setattr(Api, name, method)


@pytest.fixture
def synced(devices: tuple[Folder, Folder]) -> Iterator[tuple[Folder, Folder]]:
    """a and b in sync over three files: two chunked, one inline."""
    a, b = devices
    write(a, "p.bin", os.urandom(300 * 1024))
    write(a, "q.bin", os.urandom(300 * 1024))
    write(a, "note.txt", b"small, inline\n")
    settle(a, b)
    yield a, b


def attacked(victim: Folder, expect: str) -> None:
    """Run the CLI on the victim: caught, with `expect` in the message, and
    nothing applied."""
    before = snapshot(victim)
    code, output = sync_cli(victim)
    assert code == 4, output
    assert "sealsync: error: integrity check failed" in output, output
    assert expect in output, output
    assert snapshot(victim) == before


def contained(victim: Folder, rel: str, expect: str) -> None:
    """Run the CLI on the victim: a version whose content fails its check is
    caught (exit 4, `expect` in the message) for that file alone: the file
    keeps its last verified content and waits to be retried, while the rest
    of the pass goes on (the feed cursor moves past the entry)."""
    files, _, cursor = snapshot(victim)
    code, output = sync_cli(victim)
    assert code == 4, output
    assert "sealsync: error: integrity check failed" in output, output
    assert expect in output and rel in output, output
    assert tree(victim)[rel] == files[rel]
    assert [u[2] for u in victim.state.unplaced()] == [rel]
    assert victim.state.cursor > cursor


def skipped(victim: Folder, expect: str) -> None:
    """Run the CLI on the victim: the bad entry is refused and skipped
    loudly (issue 15), nothing of it is applied, and the pass goes on."""
    files, entries, cursor = snapshot(victim)
    code, output = sync_cli(victim)
    assert code == 1, output
    assert "refused and skipped" in output and expect in output, output
    assert (tree(victim), victim.state.entries()) == (files, entries)
    assert victim.state.cursor > cursor and victim.state.refused()


def file_id(folder: Folder, rel: str) -> str:
    entry = folder.state.by_path(rel)
    assert entry is not None
    return entry.file_id


# -- ciphertext --------------------------------------------------------------
def test_chunk_ciphertexts_swapped_between_files(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = synced
    other = a.api.get_file(file_id(a, "q.bin"))
    first = other["chunks"][0]  # in a pack (FORMAT.md §12), or a v1 chunk object
    foreign = (a.api.get_blob(other["packs"][first["pack"]], (first["offset"], first["length"]))
               if "pack" in first else a.api.get_blob(first["url"]))

    def swapped(api: Any, url: str, rng: tuple[int, int] | None = None,
                into: bytearray | None = None) -> Any:
        if "/chunks/" not in url and "/packs/" not in url:
            return REAL["get_blob"](api, url, rng)
        want = len(foreign) if rng is None else rng[1]  # the other file's sealed chunk
        return (foreign * (want // len(foreign) + 1))[:want]

    write(a, "p.bin", os.urandom(300 * 1024))
    write(a, "note.txt", b"changed in the same pass, inline\n")
    settle(a)
    Hostile(monkeypatch, b).bend("get_blob", swapped)
    contained(b, "p.bin", "data failed integrity verification")
    assert tree(b)["note.txt"] == tree(a)["note.txt"]  # one bad file stops nothing else
    contained_again = sync_cli(b)  # retried every pass, loudly, never applied
    assert contained_again[0] == 4 and "p.bin" in contained_again[1]
    monkeypatch.undo()
    settle(a, b)  # the honest server again: b catches up
    assert tree(a) == tree(b) and not b.state.unplaced()


def test_manifests_swapped_between_files(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = synced
    p, q = file_id(a, "p.bin"), file_id(a, "q.bin")
    write(a, "p.bin", os.urandom(300 * 1024))
    settle(a)

    def evil(api: Api, fid: str, revision: int | None = None) -> Body:
        if fid != p:
            return REAL["get_file"](api, fid, revision)
        body = dict(REAL["get_file"](api, q))  # q's manifest and chunks, as p's
        return {**body, "file_id": p, "revision": revision or body["revision"]}
    Hostile(monkeypatch, b).bend("get_file", evil)
    skipped(b, "data failed integrity verification")


def test_chunk_list_truncated(synced: tuple[Folder, Folder],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = synced
    write(a, "p.bin", os.urandom(900 * 1024))  # several chunks
    settle(a)

    def evil(api: Api, fid: str, revision: int | None = None) -> Body:
        body = REAL["get_file"](api, fid, revision)
        return {**body, "chunks": body.get("chunks", [])[:-1]} if "chunks" in body else body
    Hostile(monkeypatch, b).bend("get_file", evil)
    contained(b, "p.bin", "data failed integrity verification")


# -- history -----------------------------------------------------------------
def test_an_old_manifest_replayed_as_the_head(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollback: the feed announces revision 1 of note.txt again, and
    serves its (authentic, old) manifest, after b verified revision 2."""
    a, b = synced
    note = file_id(a, "note.txt")
    write(a, "note.txt", b"second version\n")
    settle(a, b)
    write(a, "q.bin", os.urandom(300 * 1024))  # so the feed has something new
    settle(a)

    def evil(api: Api, cursor: int, limit: int = 100, wait_s: int = 0) -> Body:
        page = REAL["changes"](api, cursor, limit, wait_s)
        changes = page["changes"]
        if changes:  # replace the newest entry by a replay of note.txt revision 1
            changes = [*changes[:-1], {**changes[-1], "file_id": note, "revision": 1}]
        return {**page, "changes": changes}
    Hostile(monkeypatch, b).bend("changes", evil)
    attacked(b, "the server went back (a rollback or a replay)")


def test_a_rolled_back_head_after_a_conflict(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """b uploads an edit; the server says it lost and serves an old head."""
    a, b = synced
    note = file_id(a, "note.txt")
    write(a, "note.txt", b"second version\n")
    settle(a, b)
    write(b, "note.txt", b"b's edit, which must survive\n")

    def evil(api: Api, fid: str, revision: int | None = None) -> Body:
        return REAL["get_file"](api, fid, 1 if fid == note and revision is None else revision)
    Hostile(monkeypatch, b).bend("get_file", evil)
    monkeypatch.setattr(Api, "wait_batch", lambda api, batch_id, *a, **k: {
        "batch_id": batch_id, "status": "finished",
        "entries": [{"file_id": note, "status": "conflict", "winner_revision": 3}]})
    attacked(b, "this device already verified revision 2")
    assert (b.root / "note.txt").read_bytes() == b"b's edit, which must survive\n"


def _renumbered(api: Api, hidden: set[int], cursor: int, limit: int) -> Body:
    """The real feed with `hidden` seqs left out and the rest renumbered, so
    the victim sees a gapless, self-consistent history without them."""
    entries: list[Body] = []
    at = 0
    while True:
        page = REAL["changes"](api, at, 500, 0)
        entries += page["changes"]
        at = page["cursor"]
        if not page["has_more"]:
            break
    kept = [c for c in entries if c["seq"] not in hidden]
    view = [{**c, "seq": n} for n, c in enumerate(kept, start=1)][cursor:cursor + limit]
    return {"changes": view, "cursor": view[-1]["seq"] if view else cursor,
            "has_more": len(view) == limit}


def test_two_devices_shown_different_histories(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch) -> None:
    """A fork: the server hides a's next commit from b, forever, renumbering
    b's feed so that b sees no gap. b commits twice on its branch; the second
    commit names the history b verified, which is not a's: a refuses it. And
    b, shown the real feed again, finds its own commit at another position."""
    a, b = synced
    write(a, "p.bin", os.urandom(300 * 1024))
    settle(a)
    hidden = {a.state.cursor}  # a's commit: the newest real entry
    Hostile(monkeypatch, b).bend(
        "changes", lambda api, cursor, limit=100, wait_s=0: _renumbered(api, hidden, cursor,
                                                                          limit))
    write(b, "g.txt", b"made on b's branch\n")
    settle(b)
    write(b, "h.txt", b"made after b verified its own branch\n")
    settle(b)
    attacked(a, "showing devices different histories (a fork)")
    monkeypatch.undo()
    attacked(b, "the server went back (a rollback or a replay)")  # its h.txt, renumbered


@pytest.mark.parametrize("how", ["reordered", "dropped"])
def test_change_feed_entries_reordered_or_dropped(
        synced: tuple[Folder, Folder], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    a, b = synced
    write(a, "p.bin", os.urandom(300 * 1024))
    write(a, "q.bin", os.urandom(300 * 1024))
    settle(a)

    def evil(api: Api, cursor: int, limit: int = 100, wait_s: int = 0) -> Body:
        page = REAL["changes"](api, cursor, limit, wait_s)
        c = page["changes"]
        if len(c) >= 2:
            c = [c[1], c[0], *c[2:]] if how == "reordered" else c[1:]
        return {**page, "changes": c}
    Hostile(monkeypatch, b).bend("changes", evil)
    attacked(b, "the change feed jumped from entry")


def test_a_delete_no_device_signed(synced: tuple[Folder, Folder],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A bare delete in the feed (a server tombstone: the server itself now
    refuses to commit one without a device signature, so here the server
    lies): refused and skipped, and the file is kept."""
    a, b = synced
    entry = b.state.by_path("note.txt")
    assert entry is not None

    def evil(api: Api, cursor: int, limit: int = 100, wait_s: int = 0) -> Body:
        page = REAL["changes"](api, cursor, limit, wait_s)
        if page["changes"] or cursor > b_head:
            return page
        forged = {"seq": cursor + 1, "file_id": entry.file_id,
                  "revision": entry.revision + 1, "deleted": True}
        return {"changes": [forged], "cursor": cursor + 1, "has_more": False}
    b_head = b.state.cursor
    Hostile(monkeypatch, b).bend("changes", evil)
    skipped(b, "a delete that no device signed")
    assert (b.root / "note.txt").exists()
