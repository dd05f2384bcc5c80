"""File names: what the format stores, and how a device places it on disk.

The format stores a path as bytes (docs/FORMAT.md section 5): components
joined by "/", names that are valid UTF-8 in Unicode NFC, any other name
byte for byte. Every character but NUL and "/" is legal, because the format
records what the user named; fitting a name to one file system is the
placing device's job (`local_name`), and it remembers the stored name of
every file it placed under another name, so an unchanged file never
uploads a name it did not get (state.py keeps both).

In Python a path is a `str`; bytes that are not UTF-8 are carried as the
lone surrogates U+DC80..U+DCFF (PEP 383, what `os.fsdecode` gives), so
`to_bytes` and `from_bytes` convert without loss. `shown` is the one way a
name reaches a terminal or a JSON document.

Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from .errors import IntegrityError, SealsyncClientError

META_DIR = ".sealsync"
NAME_MAX = 255  # bytes per component on ext4, XFS, btrfs, APFS (UTF-8), ...
_EXT_MAX = 16  # an extension longer than this is kept as part of the name
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class UnsafePath(IntegrityError):
    """A manifest names a path outside the sync folder (or inside .sealsync)."""


def to_bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def from_bytes(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def shown(name: str) -> str:
    """A name for people and JSON: bytes that are not UTF-8 as \\xNN, and
    control and bidi-format characters escaped too, so a name another device
    synced can neither garble a terminal (ANSI escapes, newlines) nor
    disguise itself (U+202E)."""
    text = to_bytes(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


def _is_text(part: str) -> bool:
    try:
        part.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stored_name(rel: str) -> str:
    """The path the format stores for a local relative path: each name that
    is valid UTF-8 in NFC (so NFD "café" from one device and NFC "café" from
    another are one name), any other name unchanged."""
    return "/".join(unicodedata.normalize("NFC", p) if _is_text(p) else p
                    for p in rel.split("/"))


def check_stored(path: str) -> str:
    """Confine a manifest's path to the sync root. Refuses only real
    traversal: "..", ".", empty components, an absolute path, our own
    `.sealsync/`. A backslash, a colon or a non-UTF-8 byte is a legal name."""
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") for p in parts) or parts[0] == META_DIR \
            or "\x00" in path:
        raise UnsafePath(f"refusing a path outside the sync folder: {shown(path)!r}")
    return path


# -- placing a stored name on a file system ------------------------------------
@dataclass(frozen=True)
class Profile:
    """What a local file system cannot hold, and so must be mapped."""

    name_max: int = NAME_MAX
    unicode_only: bool = False  # names must be valid Unicode (macOS, Windows)
    windows: bool = False  # Win32 forbids <>:"\|?* and control characters
    folds_case: bool = False  # "A" and "a" name one file (APFS/HFS+ default, NTFS)


POSIX = Profile()
MACOS = Profile(unicode_only=True, folds_case=True)
WINDOWS = Profile(unicode_only=True, windows=True, folds_case=True)

# Code points HFS+ ignores in names (git's list, CVE-2014-9390): ".seal\u200csync"
# is ".sealsync" there.
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
# The 8.3 short name NTFS may give ".sealsync" ("SEALSY~1"), which also opens it.
_SHORT_META = re.compile(r"sealsy~[0-9]+", re.I)


def _is_meta_alias(part: str, profile: Profile) -> bool:
    """Would this first component open our own `.sealsync/` on this file system?"""
    if not profile.folds_case:
        return False  # check_stored already refused the one exact spelling
    key = unicodedata.normalize("NFC", _HFS_IGNORED.sub("", part)).casefold()
    if profile.windows:
        key = key.rstrip(". ")  # Win32 drops trailing dots and spaces
    return key == META_DIR or profile.windows and _SHORT_META.fullmatch(key) is not None

# Full-width look-alikes, as rclone and Cygwin map them: visible, and unlike
# "_" they do not make two different names collide.
_WIN_MAP = {c: chr(0xFF00 + ord(c) - 0x20) for c in '<>:"\\|?*'}
_WIN_MAP.update({chr(c): chr(0x2400 + c) for c in range(0x20)})  # control pictures
# Win32 reads a name as a device if the part before its first dot, trailing
# spaces dropped, is one of these: "con.txt" and "CON .x" are the console.
_WIN_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]) *", re.I)


def local_name(stored: str, profile: Profile = POSIX) -> str:
    """Where a stored path goes on this file system. The identity for every
    name the file system can hold; any other name is changed visibly. A
    top-level name this file system would take for `.sealsync` (another
    case, an ignorable code point, a short name) gets a `~`: it is the
    user's file, never the client's own directory."""
    parts = [_local_part(p, profile) for p in stored.split("/")]
    if _is_meta_alias(parts[0], profile):
        parts[0] += "~"
    return "/".join(parts)


def _local_part(part: str, profile: Profile) -> str:
    original = part
    if profile.unicode_only and not _is_text(part):
        part = re.sub("[\udc80-\udcff]", lambda m: f"%{ord(m.group()) - 0xDC00:02X}", part)
    if profile.windows:
        part = "".join(_WIN_MAP.get(c, c) for c in part)
        base = part.split(".", 1)[0]
        if _WIN_RESERVED.fullmatch(base):  # "con.txt" -> "con~.txt": no longer a device
            base = base.rstrip(" ")
            part = base + "~" + part[len(base):]
        if part[-1] in ". ":
            part += "~"
    if len(to_bytes(part)) > profile.name_max:
        part = shorten(part, profile.name_max, whole=original)
    return part


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not stem or not dot or len(to_bytes(ext)) > _EXT_MAX:
        return name, ""
    return stem, "." + ext


def cut(text: str, max_bytes: int) -> str:
    """The longest prefix of `text` that fits `max_bytes`, whole characters."""
    out, used = [], 0
    for ch in text:
        n = len(to_bytes(ch))
        if used + n > max_bytes:
            break
        out.append(ch)
        used += n
    return "".join(out)


def shorten(name: str, max_bytes: int = NAME_MAX, whole: str | None = None) -> str:
    """`start~hash8.ext`: fits `max_bytes`, visibly shortened, and distinct
    for distinct long names (the hash covers the whole original name)."""
    digest = hashlib.blake2b(to_bytes(whole or name), digest_size=4).hexdigest()
    stem, ext = _split_ext(name)
    tail = f"~{digest}{ext}"
    return cut(stem, max_bytes - len(to_bytes(tail))) + tail


# -- conflict copies ------------------------------------------------------------
_MARKER = re.compile(r" \(conflicted copy from .* \d{4}-\d{2}-\d{2}\)(?: \d+)?$")


def conflict_name(rel: str, device: str, taken: Callable[[str], bool],
                  today: str | None = None, name_max: int = NAME_MAX) -> str:
    """`dir/name (conflicted copy from DEVICE YYYY-MM-DD).ext`, never nested,
    and never longer than a name may be: the name is cut, not the marker."""
    head, _, name = rel.rpartition("/")
    stem, ext = _split_ext(name)
    stem = _MARKER.sub("", stem)
    device = cut(device.replace("/", "-").replace(")", "-"), 64) or "device"
    day = today or time.strftime("%Y-%m-%d", time.gmtime())
    for n in range(1, 1000):
        suffix = f" (conflicted copy from {device} {day})" + (f" {n}" if n > 1 else "")
        room = name_max - len(to_bytes(suffix + ext))
        candidate = (f"{head}/" if head else "") + cut(stem, room) + suffix + ext
        if not taken(candidate):
            return candidate
    raise SealsyncClientError(f"too many conflict copies of {shown(rel)}")


def parents(rel: str) -> list[str]:
    """`a/b/c` -> `["a", "a/b"]`: the directories a path needs, top first."""
    parts = rel.split("/")[:-1]
    return ["/".join(parts[:i + 1]) for i in range(len(parts))]
