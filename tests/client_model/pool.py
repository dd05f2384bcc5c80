"""What the client state machine draws from: the name pool (groups of
names that collide across devices and platforms), the sizes, the operations
SEALSYNC_CLIENT_SKIP can leave out, and the rules of what a device holds
(ignored names, dev1's excluded subtree, the stored form of a name), each
written here again rather than imported, so the checks do not trust the
code they check.
"""
from __future__ import annotations

import os
import unicodedata

# -- which operations run ------------------------------------------------------
# SEALSYNC_CLIENT_SKIP=samesize,nonutf8,... leaves out name groups or
# operations (to look past a known bug). The default runs everything.
SKIP = {s.strip() for s in os.environ.get("SEALSYNC_CLIENT_SKIP", "").split(",") if s.strip()}
OPERATIONS = {"samesize", "swap", "dirrename", "typechange", "concurrent", "kill", "exclude"}

# -- names -----------------------------------------------------------------------
LONG = "l" * 246 + ".txt"  # 250 bytes: a conflict copy of it must be shortened
NON_UTF8 = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: 'caf\udce9.txt'
NFC = unicodedata.normalize("NFC", "café.txt")
NFD = unicodedata.normalize("NFD", "café.txt")
NAME_GROUPS: dict[str, list[str]] = {
    "plain": ["a.txt", "b.md", "d/c.txt", "d/e/f.bin", "g"],
    "backslash": ["a\\b.txt"],
    "long": [LONG, "d/" + LONG],
    "nonutf8": [NON_UTF8, "d/" + NON_UTF8],
    "nfc": [NFC, NFD],
    "reserved": ["CON", "aux.txt", "x:y", "d/nul"],
    "sealsync": [".sealsync-notes"],
    # Ignored by the default rules on every device: never leave the device
    # that wrote them (ignore.py).
    "ignored": ["x.swp", "d/.DS_Store"],
    # Under the subtree dev1 keeps on the server only (EXCLUDED).
    "excluded": ["d2/k.txt"],
}
if SKIP - OPERATIONS - set(NAME_GROUPS):
    raise ValueError(f"SEALSYNC_CLIENT_SKIP: unknown {sorted(SKIP - OPERATIONS - set(NAME_GROUPS))}"
                     f"; use {sorted(OPERATIONS | set(NAME_GROUPS))}")
FILE_NAMES = [n for group, names in NAME_GROUPS.items() if group not in SKIP for n in names]
DIR_NAMES = ["d", "d2", "d/e", "moved"] + (["x:y"] if "reserved" not in SKIP else []) \
    + (["caf\u00e9"] if "nfc" not in SKIP else [])
SIZES = [30, 3000, 200_000]  # inline, inline, chunked (1-3 chunks)
# dev1 excludes this subtree from the start (`sealsync exclude`): it holds
# only what dev1 itself put there, and the other devices all of it.
EXCLUDED = "d2"
EXCLUDING = 1 if "exclude" not in SKIP else -1


def ignored_name(rel: str) -> bool:
    """The pool's names that the default ignore rules leave out (written
    here again, not taken from ignore.py: the check does not trust the
    code it checks); a conflict copy keeps the extension, and what is in
    a directory of such a name is left out with it (file_to_dir)."""
    return any(part.endswith(".swp") or part == ".DS_Store" for part in rel.split("/"))


def in_excluded(rel: str) -> bool:
    return rel == EXCLUDED or rel.startswith(EXCLUDED + "/")


def stored_name(rel: str) -> str:
    """The name as the format stores it (FORMAT.md section 5): NFC for each
    component that is valid UTF-8, the other components unchanged. Written
    here again, not imported, so the check does not trust the code it checks."""
    parts = []
    for part in rel.split("/"):
        try:
            part.encode("utf-8")  # strict: surrogate escapes fail
        except UnicodeEncodeError:
            parts.append(part)
        else:
            parts.append(unicodedata.normalize("NFC", part))
    return "/".join(parts)
