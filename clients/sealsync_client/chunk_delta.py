"""An edit's chunk list sent as ranges of its base revision's list. Pure.

A batch entry lists every chunk of its version (the server must know them
all: reads, quota, garbage collection). For a small edit of a big file
almost all of them are its base's: a 1 MiB overwrite of a 1 GiB file
keeps ~3,400 of its chunks, and listing them as `{id, size}` costs
~294 KB, more than the changed data's tenth. So when this device knows the
exact list the server holds for the base revision, runs of the new list
that equal runs of the base's go as `{"base": start, "count": n, "size":
s}` (docs/DESIGN.md, "Edits sent against their base"; the server expands
them: chalicelib/core/chunk_ranges.py).

Both lists are in the order entries send them (sorted by id), so an edit
that replaces k chunks leaves about 2k + 1 runs. A simple greedy match is
enough: at each chunk of the new list, extend a run from where the last
one ended in the base or from the chunk's first place in the base,
whichever is longer.

A wrong guess cannot be committed: the entry also states `chunks_sha256`
(SHA-256 of the full list, the digest its device signature covers), the
server refuses an expansion that does not hash to it, and the client then
sends the full list (transfer.py).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any


def against_base(base: Sequence[str], new: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """`new` ((id, size) in entry order) as explicit chunks and ranges of
    `base` (the base revision's ids, in the server's order)."""
    first: dict[str, int] = {}
    for at, chunk_id in enumerate(base):
        first.setdefault(chunk_id, at)
    out: list[dict[str, Any]] = []
    j, resume = 0, 0  # resume: where in `base` the last run ended
    while j < len(new):
        chunk_id, size = new[j]
        start, count = -1, 0
        for p in (resume, first.get(chunk_id, -1)):
            n = _run(base, p, new, j)
            if n > count:
                start, count = p, n
        if count == 0:
            out.append({"id": chunk_id, "size": size})
            j += 1
            continue
        out.append({"base": start, "count": count,
                    "size": sum(s for _, s in new[j:j + count])})
        j, resume = j + count, start + count
    return out


def _run(base: Sequence[str], p: int, new: Sequence[tuple[str, int]], j: int) -> int:
    """How many chunks from new[j] on equal base[p] on."""
    if not 0 <= p < len(base):
        return 0
    n = 0
    while j + n < len(new) and p + n < len(base) and base[p + n] == new[j + n][0]:
        n += 1
    return n


def uses_base(chunks: Sequence[dict[str, Any]]) -> bool:
    return any("base" in c for c in chunks)


def chunks_sha256(chunk_ids: Sequence[str]) -> str:
    """SHA-256 of the ids (32 bytes each) in order, as hex: the entry's
    `chunks_sha256`, the digest its device signature covers (FORMAT.md
    section 13)."""
    return hashlib.sha256(b"".join(bytes.fromhex(c) for c in chunk_ids)).hexdigest()


def as_listed(manifest_ids: Sequence[str], served: object,
              revision: int) -> tuple[list[str], int | None]:
    """A downloaded version's chunk list as its uploader's entry listed it
    (sorted ids, repeats kept: transfer.entry_chunks), with its revision when
    the server's answer (`served`: its `chunks`, each id once, in its list's
    order) agrees; without one otherwise (another client's order: good for
    what need not be asked about, not for ranges)."""
    ids = sorted(manifest_ids)
    order = [c.get("id") for c in served if isinstance(c, dict)] \
        if isinstance(served, list) else None
    return ids, (revision if order == list(dict.fromkeys(ids)) else None)


def revision_of(verdict: dict[str, Any]) -> int | None:
    """An accepted entry's revision, if the verdict carries a sane one."""
    rev = verdict.get("revision")
    return rev if isinstance(rev, int) and not isinstance(rev, bool) and rev > 0 else None
