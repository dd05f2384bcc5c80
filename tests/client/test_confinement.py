"""Issue 15, path confinement under the design of issue 13: every stored
name is legal, and each device places it under a visible mapping. Here a
model of how Win32 and macOS read a path checks that none of the hostile
names from the finding reaches outside the folder or into `.sealsync/`.
(POSIX and symbolic links: tests/client_e2e/test_confinement_links.py.)"""
from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sealsync_client.names import MACOS, META_DIR, POSIX, WINDOWS, check_stored, local_name

HOSTILE = ["C:/x", "C:x", "CON", "con.txt", "CON .txt", "lpt1.tar.gz", "nul ", "name:stream",
           "name::$DATA", ".SEALSYNC/config.json",
           ".Sealsync/keys", ".sealsync./config.json", ".sealsync /config.json",
           "SEALSY~1/config.json", "sealsy~2/keys", ".seal\u200csync/config.json",
           ".sealsync\ufeff/keys", "..\\..\\evil", "a/..\\..\\evil", "\\\\server\\share\\x",
           "a/C:\\windows\\x", "... /x", ".. /x"]
_RESERVED = re.compile(r"CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]", re.I)


def win32_reading(rel: str) -> list[str]:
    """What Win32 makes of a relative path under the root: the components
    it opens, or AssertionError if it leaves the root or names a device."""
    out = []
    for comp in re.split(r"[\\/]", rel):
        assert ":" not in comp, f"{rel!r}: a drive or an alternate data stream"
        comp = comp.rstrip(". ")
        assert comp not in ("", ".", ".."), f"{rel!r}: traversal"
        assert not _RESERVED.fullmatch(comp.split(".")[0].rstrip(" ")), \
            f"{rel!r}: a device name"
        out.append(comp.casefold())
    assert out[0] != META_DIR and not re.fullmatch(r"sealsy~[0-9]+", out[0]), \
        f"{rel!r}: opens the client's own directory"
    return out


def macos_reading(rel: str) -> list[str]:
    """APFS/HFS+ (case-insensitive, HFS+ ignorable code points dropped)."""
    out = []
    for comp in rel.split("/"):
        assert comp not in ("", ".", ".."), f"{rel!r}: traversal"
        key = re.sub("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]", "", comp)
        out.append(unicodedata.normalize("NFD", key).casefold())
    assert out[0] != unicodedata.normalize("NFD", META_DIR), \
        f"{rel!r}: opens the client's own directory"
    return out


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside_and_off_our_directory_on_windows(name: str) -> None:
    win32_reading(local_name(check_stored(name), WINDOWS))


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_stay_inside_and_off_our_directory_on_macos(name: str) -> None:
    macos_reading(local_name(check_stored(name), MACOS))


def test_the_mapping_is_visible_and_posix_keeps_the_exact_name() -> None:
    assert local_name(".SEALSYNC/config.json", MACOS) == ".SEALSYNC~/config.json"
    assert local_name("SEALSY~1/x", WINDOWS) == "SEALSY~1~/x"
    assert local_name("C:/x", WINDOWS) == "C\uff1a/x"
    assert local_name("sub/.SEALSYNC/x", MACOS) == "sub/.SEALSYNC/x"  # only the top is ours
    assert local_name(".SEALSYNC/config.json", POSIX) == ".SEALSYNC/config.json"  # case-exact


_PATHS = st.lists(st.text(st.characters(blacklist_characters="/\x00",
                                        blacklist_categories=("Cs",)), min_size=1,
                          max_size=12), min_size=1, max_size=4).map("/".join)


@given(_PATHS)
def test_no_stored_path_escapes_on_windows_or_macos(path: str) -> None:
    try:
        check_stored(path)
    except Exception:
        return
    win32_reading(local_name(path, WINDOWS))
    macos_reading(local_name(path, MACOS))


@given(st.sampled_from([".sealsync", "sealsy~1"]), st.text("sSeEaAlLyYnNcC. \u200c", max_size=3))
def test_spellings_of_our_directory_are_all_mapped(base: str, noise: str) -> None:
    for name in (base.upper(), base.title(), base + noise, noise + base):
        try:
            check_stored(f"{name}/x")
        except Exception:
            continue
        win32_reading(local_name(f"{name}/x", WINDOWS))
        macos_reading(local_name(f"{name}/x", MACOS))
