"""The pure rules behind ignore, selective sync and conflict copies:
ignore.Rules, progress.Tally and conflicts.parse (docs/CLIENT.md)."""
from __future__ import annotations

import pytest
from sealsync_client.conflicts import parse
from sealsync_client.ignore import IGNORE_FILE, Rules, normalise
from sealsync_client.names import conflict_name
from sealsync_client.progress import Tally


@pytest.mark.parametrize("path", [
    ".DS_Store", "a/b/.DS_Store", "Thumbs.db", "desktop.ini", "~$report.docx",
    "d/~$budget.xlsx", ".~lock.notes.odt#", "notes.txt.swp", "notes.txt~", ".#notes.txt",
    "#notes.txt#", "film.mp4.part", "setup.exe.crdownload", "._resource"])
def test_the_defaults_leave_out_litter_locks_swap_files_and_partial_downloads(
        path: str) -> None:
    assert Rules.build().withheld(path) == "ignored"


@pytest.mark.parametrize("path", [
    "report.docx", "notes.txt", "a/b/c.txt", "desktop.ini.txt", "part", "my~file.txt",
    IGNORE_FILE])
def test_ordinary_names_sync(path: str) -> None:
    assert Rules.build().withheld(path) is None


def test_the_ignore_file_uses_gitignore_syntax_and_can_take_a_default_back() -> None:
    rules = Rules.build("# comment\nnode_modules/\n*.log\n!keep.log\n/top.txt\n!*.part\n")
    assert rules.ignored("node_modules", is_dir=True)
    assert rules.ignored("web/node_modules/x/y.js")
    assert rules.ignored("a/debug.log") and not rules.ignored("keep.log")
    assert rules.ignored("top.txt") and not rules.ignored("sub/top.txt")
    assert not rules.ignored("film.part")  # a default taken back
    assert not rules.ignored("node_modules")  # the pattern names a directory only


def test_the_ignore_file_itself_is_never_ignored() -> None:
    assert Rules.build(".*\n*\n").withheld(IGNORE_FILE) is None
    assert Rules.build("*\n").withheld("a.txt") == "ignored"


def test_an_excluded_subtree_withholds_itself_and_what_is_under_it_only() -> None:
    rules = Rules.build("", ["./photos//2019/", "big"])
    assert rules.excluded == ("big", "photos/2019")
    assert rules.withheld("photos/2019") == "excluded"
    assert rules.withheld("photos/2019/a.jpg") == "excluded"
    assert rules.withheld("photos/2019b/a.jpg") is None
    assert rules.withheld("photos/a.jpg") is None
    assert rules.withheld("big/x/.DS_Store") == "excluded"  # excluded says more
    assert normalise("a\\b/./c/") == "a/b/c"


def test_conflict_copy_names_parse_back_to_original_device_and_date() -> None:
    copy = conflict_name("d/plan.txt", "laptop (work)", lambda _: False, "2026-11-30")
    c = parse(copy)
    assert c is not None
    assert (c.original, c.device, c.date) == ("d/plan.txt", "laptop (work-", "2026-11-30")
    second = conflict_name("notes", "pc", lambda p: p == "notes (conflicted copy from pc "
                           "2026-01-02)", "2026-01-02")
    c2 = parse(second)
    assert c2 is not None and c2.original == "notes" and second.endswith(" 2")
    assert parse("plan.txt") is None and parse("(conflicted copy from x 2026-01-01).txt") is None


def test_the_tally_counts_rate_and_eta() -> None:
    now = [100.0]
    t = Tally(clock=lambda: now[0])
    t.found(4, 1000)
    assert t.snapshot()["eta_seconds"] is None  # no rate yet
    now[0] = 102.0
    t.done(1, 400)
    s = t.snapshot()
    assert (s["files_done"], s["files_total"], s["bytes_done"], s["bytes_total"]) == (
        1, 4, 400, 1000)
    assert s["bytes_per_second"] == 200 and s["eta_seconds"] == 3.0
    t.done(3, 600)
    assert t.snapshot()["eta_seconds"] == 0.0
