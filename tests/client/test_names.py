"""Names (names.py): what the format stores and how a name is placed. Pure."""
from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealsync_client.names import (
    MACOS,
    NAME_MAX,
    POSIX,
    WINDOWS,
    UnsafePath,
    check_stored,
    conflict_name,
    from_bytes,
    local_name,
    shorten,
    shown,
    stored_name,
    to_bytes,
)

NFC, NFD = "caf\u00e9.txt", "cafe\u0301.txt"
RAW = from_bytes(b"caf\xe9.txt")  # a Latin-1 name on Linux: not UTF-8


def test_stored_names_are_nfc_and_non_utf8_names_stay_bytes() -> None:
    assert stored_name(NFD) == NFC == stored_name(NFC)
    assert stored_name(f"e\u0301t\u00e9/{NFD}") == f"\u00e9t\u00e9/{NFC}"
    assert stored_name(RAW) == RAW and to_bytes(stored_name(RAW)) == b"caf\xe9.txt"
    assert stored_name("back\\slash.txt") == "back\\slash.txt"


@pytest.mark.parametrize("path", ["back\\slash.txt", "a\\..\\b", "C:x", "x:y", "CON",
                                  ".sealsync-notes", "sub/.sealsync/x", ".SEALSYNC/x",
                                  "trailing. ", RAW, "tab\there"])
def test_legal_names_are_not_refused(path: str) -> None:
    assert check_stored(path) == path


def test_shown_names_survive_a_terminal_and_json() -> None:
    assert shown(RAW) == "caf\\xe9.txt"
    assert shown(NFC) == NFC and shown("emoji 🙂") == "emoji 🙂"
    # A name from another device cannot garble a terminal or disguise itself.
    assert shown("a\nb") == "a\\nb" and shown("\x1b[2Jx") == "\\x1b[2Jx"
    assert shown("\u202etxt.exe") == "\\u202etxt.exe"
    shown(RAW).encode("utf-8")  # never a lone surrogate


def test_posix_places_every_name_it_can_hold_unchanged() -> None:
    for name in ("back\\slash.txt", "x:y", "CON", RAW, NFD, "a" * NAME_MAX):
        assert local_name(name, POSIX) == name


def test_too_long_a_name_is_shortened_visibly_and_distinctly() -> None:
    a, b = "a" * 300 + ".txt", "a" * 299 + "b.txt"
    short_a, short_b = local_name(a), local_name(b)
    assert len(to_bytes(short_a)) <= NAME_MAX and short_a.endswith(".txt")
    assert "~" in short_a and short_a != short_b
    assert local_name(f"dir/{a}") == f"dir/{short_a}"
    multibyte = "é" * 200  # 400 bytes: cut at a character boundary
    assert len(to_bytes(shorten(multibyte))) <= NAME_MAX
    shorten(multibyte).encode("utf-8")


def test_windows_maps_what_win32_refuses_to_visible_look_alikes() -> None:
    assert local_name("a<b>c:d\"e\\f|g?h*i", WINDOWS) == "a＜b＞c：d＂e＼f｜g？h＊i"
    assert local_name("CON", WINDOWS) == "CON~"
    assert local_name("aux.txt", WINDOWS) == "aux~.txt"  # "aux.txt~" would still be AUX
    assert local_name("dots...", WINDOWS) == "dots...~"
    assert local_name("tab\there", WINDOWS) == "tab\u2409here"
    assert local_name(RAW, WINDOWS) == "caf%E9.txt"
    assert local_name("normal name.txt", WINDOWS) == "normal name.txt"
    assert local_name(RAW, MACOS) == "caf%E9.txt"


_NAMES = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                min_size=1, max_size=40)
_LOOK_ALIKES = set("＜＞：＂＼｜？＊") | {chr(0x2400 + c) for c in range(0x20)}


@given(_NAMES)
def test_windows_names_hold_nothing_win32_refuses(name: str) -> None:
    placed = local_name(name, WINDOWS)
    assert not set(placed) & set('<>:"\\|?*') and all(ord(c) >= 0x20 for c in placed)
    assert placed[-1] not in ". " and len(to_bytes(placed)) <= NAME_MAX


@given(_NAMES, _NAMES)
def test_windows_placement_keeps_different_names_apart(a: str, b: str) -> None:
    """Distinct names stay distinct, unless one already holds a look-alike
    or the `~` the mapping adds (then the state remembers which)."""
    if a == b or any(set(n) & _LOOK_ALIKES or "~" in n for n in (a, b)):
        return
    assert local_name(a, WINDOWS) != local_name(b, WINDOWS)


def test_conflict_copies_of_long_names_fit_and_keep_marker_and_extension() -> None:
    long = "n" * 246 + ".txt"  # 250 bytes: the marker alone would overflow
    taken: set[str] = set()
    first = conflict_name(f"dir/{long}", "laptop", taken.__contains__, "2026-11-30")
    leaf = first.rpartition("/")[2]
    assert len(to_bytes(leaf)) <= NAME_MAX
    assert leaf.endswith(" (conflicted copy from laptop 2026-11-30).txt")
    taken.add(first)
    second = conflict_name(f"dir/{long}", "laptop", taken.__contains__, "2026-11-30")
    assert second != first and len(to_bytes(second.rpartition("/")[2])) <= NAME_MAX
    # a copy of a copy is not nested, even when cut
    again = conflict_name(first, "desk", set().__contains__, "2026-11-30")
    assert again.count("conflicted copy") == 1


def test_conflict_names_of_non_utf8_and_nfd_names() -> None:
    name = conflict_name(RAW, "x", set().__contains__, "2026-11-30")
    assert to_bytes(name) == b"caf\xe9 (conflicted copy from x 2026-11-30).txt"
    assert unicodedata.is_normalized("NFD", conflict_name(NFD, "x", set().__contains__))


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../b", ".sealsync/state.db",
                                  ".sealsync", "a//b", "./a", "a/", "a/.", "", "a\x00b"])
def test_real_traversal_is_refused(path: str) -> None:
    with pytest.raises(UnsafePath):
        check_stored(path)
