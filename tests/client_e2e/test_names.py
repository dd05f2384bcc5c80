"""Conflict-copy names and path confinement (pure, no stack)."""
from __future__ import annotations

import pytest
from sealsync_client.engine import conflict_name
from sealsync_client.names import UnsafePath, check_stored


def test_conflict_names_keep_the_extension_and_never_nest() -> None:
    taken: set[str] = set()
    name = conflict_name("a/report.final.md", "laptop", taken.__contains__, "2026-11-23")
    assert name == "a/report.final (conflicted copy from laptop 2026-11-23).md"
    taken.add(name)
    again = conflict_name(name, "desk", taken.__contains__, "2026-11-23")
    assert again == "a/report.final (conflicted copy from desk 2026-11-23).md"
    third = conflict_name(name, "laptop", taken.__contains__, "2026-11-23")
    assert third == "a/report.final (conflicted copy from laptop 2026-11-23) 2.md"
    taken.add(third)
    assert conflict_name(".bashrc", "x", taken.__contains__, "2026-11-23") == \
        ".bashrc (conflicted copy from x 2026-11-23)"
    assert conflict_name("Makefile", "x/y", taken.__contains__, "2026-11-23") == \
        "Makefile (conflicted copy from x-y 2026-11-23)"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", ".sealsync/state.db",
                                  ".sealsync", "a//b", "./a", "a/", "a/.", "", "a\x00b"])
def test_a_hostile_manifest_path_is_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        check_stored(path)


def test_ordinary_paths_pass() -> None:
    assert check_stored("docs/ü notes (1).txt") == "docs/ü notes (1).txt"
