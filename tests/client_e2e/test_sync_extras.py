"""Ignore rules, selective sync, `sync --dry-run` and `conflicts`, through
the `sealsync` command line on the local stack (docs/CLIENT.md)."""
from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from sealsync_client import selective
from sealsync_client.folder import Folder

from tests.client_e2e.test_cli import FAST, as_json, sealsync
from tests.client_e2e.test_two_devices import s3_objects, write
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def pair(stack: StackProcess, tmp_path: Path) -> tuple[Path, Path]:
    api = stack.state["api"]
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    as_json("init", "--server", api, "--join", account["user_id"], "--device", "two",
            *FAST, str(two), secret_key=account["secret_key"])
    return one, two


def put(root: Path, rel: str, data: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def files(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".sealsync"]
        for n in names:
            p = Path(dirpath, n)
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def test_ignored_files_are_never_uploaded_nor_deleted_and_held_until_unignored(
        stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    for rel in (".DS_Store", "Thumbs.db", "desktop.ini", "~$report.docx", "notes.txt.swp",
                "notes.txt~", ".#notes.txt", "film.mp4.part", "setup.exe.crdownload",
                "build/out.o", "debug.log", "keep.txt", "sub/.DS_Store"):
        put(one, rel, f"{rel}\n")
    put(one, ".sealsyncignore", "# ours\nbuild/\n*.log\n")
    assert sorted(as_json("sync", str(one))["uploaded"]) == [".sealsyncignore", "keep.txt"]
    status = as_json("status", "--ignored", str(one))
    assert status["new"] == []
    assert {i["path"]: i["reason"] for i in status["ignored"]} == dict.fromkeys(
        (".#notes.txt", ".DS_Store", "Thumbs.db", "build", "debug.log", "desktop.ini",
         "film.mp4.part", "notes.txt.swp", "notes.txt~", "setup.exe.crdownload",
         "sub/.DS_Store", "~$report.docx"), "ignored")
    assert "ignored   debug.log" in sealsync("status", "--ignored", str(one)).stdout
    assert "debug.log" not in sealsync("status", str(one)).stdout
    assert sorted(as_json("sync", str(two))["downloaded"]) == [".sealsyncignore", "keep.txt"]

    # A remote delete of a file ignored here leaves it alone.
    put(one, "cache.tmp", "shared\n")
    as_json("sync", str(one))
    as_json("sync", str(two))
    (one / "cache.tmp").unlink()
    assert as_json("sync", str(one))["deleted_remote"] == ["cache.tmp"]
    put(two, ".sealsyncignore", "build/\n*.log\n*.tmp\n")  # two's rule, not synced yet
    put(one, "fresh.tmp", "made on one\n")
    as_json("sync", str(one))
    report = as_json("sync", str(two))
    assert report["deleted_here"] == [] and report["downloaded"] == []
    assert report["held"] == ["fresh.tmp"]  # remote, ignored here: held, not placed
    assert report["uploaded"] == [".sealsyncignore"]
    assert (two / "cache.tmp").read_text() == "shared\n"  # never deleted here
    assert not (two / "fresh.tmp").exists()
    assert as_json("status", "--ignored", str(two))["held"] == ["fresh.tmp"]
    # The rule came to one too (the ignore file syncs): fresh.tmp stays
    # on one, on the server, and is not deleted by two's rule.
    assert as_json("sync", str(one))["downloaded"] == [".sealsyncignore"]
    assert (one / "fresh.tmp").exists()

    # Take the rule out: the held file is placed, the ignored one uploads.
    put(two, ".sealsyncignore", "build/\n*.log\n")
    report = as_json("sync", str(two))
    assert report["downloaded"] == ["fresh.tmp"]
    assert sorted(report["uploaded"]) == [".sealsyncignore", "cache.tmp"]
    assert (two / "fresh.tmp").read_text() == "made on one\n"
    assert as_json("status", "--ignored", str(two))["held"] == []


def test_exclude_keeps_a_subtree_server_only_and_include_brings_it_back(
        stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    put(one, "big/a.bin", "a" * 5000)
    put(one, "big/sub/b.txt", "b1\n")
    put(one, "top.txt", "top\n")
    as_json("sync", str(one))
    as_json("sync", str(two))
    put(two, "big/sub/b.txt", "b2, edited on two, not synced\n")
    put(two, "big/.DS_Store", "litter\n")  # ignored: never synced, stays
    done = as_json("exclude", str(two), "big")
    assert done["done"] and done["uploaded"] == ["big/sub/b.txt"]  # the edit first
    assert sorted(done["removed"]) == ["big/a.bin", "big/sub/b.txt"]
    assert files(two) == {"top.txt": b"top\n", "big/.DS_Store": b"litter\n"}
    assert as_json("status", str(two))["excluded"] == ["big"]
    as_json("sync", str(one))
    assert (one / "big/sub/b.txt").read_text() == "b2, edited on two, not synced\n"

    # Remote changes under big/: the cursor moves, nothing is downloaded.
    put(one, "big/a.bin", "A" * 7000)
    put(one, "big/new.txt", "new\n")
    put(one, "top.txt", "top 2\n")
    as_json("sync", str(one))
    report = as_json("sync", str(two))
    assert report["downloaded"] == ["top.txt"]
    assert sorted(report["held"]) == ["big/a.bin", "big/new.txt"]
    assert not (two / "big/a.bin").exists()
    as_json("sync", str(one))  # one's own uploads come back to it: its cursor moves too
    assert as_json("status", str(two))["cursor"] == as_json("status", str(one))["cursor"] == 7
    assert as_json("sync", str(two))["downloaded"] == []  # nothing comes back later

    # Usage errors: one line, exit code 2.
    assert "inside the excluded big" in sealsync("include", str(two), "big/sub",
                                                 check=2).stderr
    assert "is not excluded" in sealsync("include", str(two), "top.txt", check=2).stderr
    assert "give a path inside" in sealsync("exclude", str(two), "../x", check=2).stderr
    assert "cannot be excluded" in sealsync("exclude", str(two), ".sealsyncignore",
                                            check=2).stderr

    report = as_json("include", str(two), "big")
    assert report["included"] == ["big"]
    assert sorted(report["downloaded"]) == ["big/a.bin", "big/new.txt", "big/sub/b.txt"]
    assert {k: v for k, v in files(two).items() if k != "big/.DS_Store"} == files(one)
    assert as_json("status", str(two))["excluded"] == []


def test_exclude_refuses_while_something_under_the_path_is_not_synced(
        devices: tuple[Folder, Folder]) -> None:
    a, _ = devices
    write(a, "proj/synced.txt", b"synced\n")
    a.engine().sync()
    write(a, "proj/new.txt", b"not uploaded yet\n")  # no sync in between
    write(a, "proj/synced.txt", b"edited, not uploaded\n")
    engine = a.engine()
    done = selective.exclude(engine.withheld, "proj")
    assert done.unsynced == ["proj/new.txt", "proj/synced.txt"] and done.removed == []
    assert engine.withheld.excluded() == []
    assert (a.root / "proj/new.txt").read_bytes() == b"not uploaded yet\n"
    assert (a.root / "proj/synced.txt").read_bytes() == b"edited, not uploaded\n"


def db_dump(root: Path) -> list[str]:
    db = sqlite3.connect(root / ".sealsync" / "state.db")
    try:
        return list(db.iterdump())
    finally:
        db.close()


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath, n)
            if p.name.startswith("state.db"):
                continue  # compared as content (db_dump): SQLite may touch the files
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


def test_dry_run_forecasts_the_pass_and_changes_nothing(
        stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    for rel in ("both.txt", "gone-there.txt", "gone-here.txt", "old-name.txt", "same.txt"):
        put(one, rel, f"{rel} v1\n")
    as_json("sync", str(one))
    as_json("sync", str(two))
    put(one, "both.txt", "edited on one\n")
    put(one, "from-one.txt", "new on one\n")
    (one / "gone-there.txt").unlink()
    as_json("sync", str(one))
    put(two, "both.txt", "edited on two\n")
    put(two, "from-two.txt", "new on two\n")
    (two / "gone-here.txt").unlink()
    os.rename(two / "old-name.txt", two / "new-name.txt")

    before = (snapshot(two), db_dump(two), sorted(s3_objects(stack, "")))
    plan = as_json("sync", "--dry-run", str(two))
    assert (snapshot(two), db_dump(two), sorted(s3_objects(stack, ""))) == before
    assert plan["dry_run"] is True
    assert sorted(plan["download"]) == ["both.txt", "from-one.txt"]
    assert plan["move_aside"] == ["both.txt"]
    assert plan["delete_here"] == ["gone-there.txt"]
    assert sorted(plan["upload"]) == ["both.txt (as its conflict copy)", "from-two.txt"]
    assert plan["rename_remote"] == ["old-name.txt -> new-name.txt"]
    assert plan["delete_remote"] == ["gone-here.txt"]
    assert plan["bytes_down"] == len("edited on one\n") + len("new on one\n")
    text = sealsync("sync", "--dry-run", str(two)).stdout
    assert "dry run (nothing was changed)" in text and "delete on the server:" in text

    # The pass itself then does what was forecast.
    done = as_json("sync", str(two))
    assert sorted(done["downloaded"]) == ["both.txt", "from-one.txt"]
    assert done["deleted_here"] == ["gone-there.txt"]
    assert done["renamed"] == ["old-name.txt -> new-name.txt"]
    assert done["deleted_remote"] == ["gone-here.txt"]
    assert len(done["conflicts"]) == 1 and "from-two.txt" in done["uploaded"]
    assert as_json("sync", "--dry-run", str(two))["upload"] == []


def test_conflicts_are_listed_and_settled_by_an_upload_keeping_history(
        stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    put(one, "plan.txt", "v1\n")
    put(one, "list.txt", "l1\n")
    as_json("sync", str(one))
    as_json("sync", str(two))
    put(one, "plan.txt", "one's plan\n")
    put(one, "list.txt", "one's list\n")
    as_json("sync", str(one))
    put(two, "plan.txt", "two's plan\n")
    put(two, "list.txt", "two's list\n")
    assert len(as_json("sync", str(two))["conflicts"]) == 2
    as_json("sync", str(one))
    assert as_json("conflicts", str(one))["conflicts"] == as_json(
        "conflicts", str(two))["conflicts"]
    rows = {c["original"]: c for c in as_json("conflicts", str(one))["conflicts"]}
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert set(rows) == {"plan.txt", "list.txt"}
    assert rows["plan.txt"]["device"] == "two" and rows["plan.txt"]["date"] == day
    assert rows["plan.txt"]["path"] == f"plan (conflicted copy from two {day}).txt"
    assert (one / rows["plan.txt"]["path"]).read_text() == "two's plan\n"
    assert f"from two on {day}" in sealsync("conflicts", str(one)).stdout

    # keep-mine: the copy's version becomes plan.txt's next revision.
    done = as_json("conflicts", str(one), "--resolve", "keep-mine", "plan.txt")
    assert done["uploaded"] == ["plan.txt"] and done["deleted_remote"] == [
        rows["plan.txt"]["path"]]
    assert (one / "plan.txt").read_text() == "two's plan\n"
    # keep-theirs, naming the copy: list.txt stays, the copy goes.
    done = as_json("conflicts", str(one), "--resolve", "keep-theirs", rows["list.txt"]["path"])
    assert done["deleted_remote"] == [rows["list.txt"]["path"]] and done["uploaded"] == []
    as_json("sync", str(two))
    assert files(one) == files(two) == {"plan.txt": b"two's plan\n",
                                        "list.txt": b"one's list\n"}
    assert as_json("conflicts", str(two))["conflicts"] == []
    sizes = [r["size"] for r in as_json("history", str(two), "plan.txt")["revisions"]]
    assert sizes == [len("two's plan\n"), len("one's plan\n"), len("v1\n")]  # nothing lost

    assert "not a conflict copy" in sealsync("conflicts", str(one), "--resolve",
                                             "keep-mine", "plan.txt", check=2).stderr
    assert sealsync("conflicts", str(one), "--resolve", "keep-both", "plan.txt",
                    check=2).returncode == 2
