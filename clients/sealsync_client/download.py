"""Downloading one file version: open its manifest for exactly (file,
revision), fetch its chunks by presigned GET with a few requests in flight,
and let `decrypt_file` verify every chunk before anything is renamed into
place. A failed or killed download keeps its part file (dest + ".part");
the next one for the same dest re-hashes it and fetches only the chunks
after its verified prefix. Transfer (transfer.py) is the one caller.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .api import Api, Body, Expired
from .bars import Progress
from .crypto import sealed_len
from .errors import IntegrityError
from .keys import Keyring
from .manifest import Manifest, ManifestPlace, open_manifest
from .names import check_stored, shown
from .packing import RangedFetch
from .pipeline import decrypt_file

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the server's cap on one manifest envelope


@dataclass(frozen=True)
class Version:
    """A remote version: the server's view and, unless deleted, its manifest."""

    file_id: str
    revision: int
    body: Body
    manifest: Manifest | None

    @property
    def expired(self) -> bool:
        """The server let this (superseded) revision expire: its manifest
        opens and verifies, its content cannot be downloaded any more."""
        return "expired_at" in self.body


def open_version(api: Api, ring: Keyring, user_id: str, file_id: str,
                 revision: int | None = None) -> Version:
    """A version's manifest, opened only for the place it was sealed for.
    An expired revision (410) still has its manifest, which the history
    needs; its Version is `expired` and names no chunks."""
    try:
        body = api.get_file(file_id, revision)
    except Expired as exc:
        if revision is None:
            raise  # the head never expires: a server saying so is refused
        body = _expired(exc.body)
    rev = int(body["revision"])
    if revision is not None and rev != revision:
        raise IntegrityError()  # the server answered for another revision
    if body.get("deleted"):
        return Version(file_id, rev, body, None)
    envelope = api.get_blob(body["manifest_url"], _range(body.get("manifest_range")))
    manifest = open_manifest(ring, ManifestPlace.for_download(user_id, file_id, rev),
                             envelope)
    check_stored(manifest.path)
    return Version(file_id, rev, body, manifest)


def _expired(body: Body) -> Body:
    """A 410's body as a version's: what the history needs (the manifest's
    place), never chunks; anything less is refused like a bad manifest."""
    out = {k: v for k, v in body.items() if k not in ("chunks", "packs")}
    whole = isinstance(out.get("expired_at"), int) and isinstance(out.get("revision"), int)
    if not whole or not (out.get("deleted") or "manifest_url" in out):
        raise IntegrityError()
    return out


def fetch_version(api: Api, ring: Keyring, user_id: str, workers: int, bar: Progress,
                  v: Version, dest: Path) -> None:
    """Write a version's content to `dest` (atomically, all chunks verified).

    Resumes from `pipeline.part_path(dest)` when an earlier attempt left
    one: its verified prefix counts as done on the progress bar at once,
    and only the chunks after it are fetched.
    """
    assert v.manifest is not None
    refs = v.manifest.chunks
    fetch: RangedFetch | None = None
    total = sum(sealed_len(r.size) for r in refs)
    with ThreadPoolExecutor(workers) as pool, \
            bar(f"down {shown(v.manifest.path)}", total) as progress:
        def resumed(done: int, _bytes: int) -> None:
            nonlocal fetch
            # v1 chunks one GET each, pack blobs in coalesced ranges
            # (packing.py), fetched ahead within a byte budget.
            fetch = RangedFetch(api.get_blob, v.body, [r.id for r in refs[done:]],
                                pool, workers * 2, progress.update)
            if done:
                progress.update(sum(sealed_len(r.size) for r in refs[:done]))

        def fetch_one(chunk_id: str) -> bytes:
            assert fetch is not None  # decrypt_file reports the resume first
            return fetch(chunk_id)

        os.makedirs(dest.parent, exist_ok=True)
        try:
            decrypt_file(v.manifest, ring, user_id, fetch_one, dest, on_resume=resumed)
        finally:
            if fetch is not None:
                fetch.cancel()  # after a failure, start no more GETs


def _range(value: Any) -> tuple[int, int] | None:
    """A batch-committed manifest is a slice of its bundle: (offset, length)."""
    if value is None:
        return None
    try:
        offset, length = int(value["offset"]), int(value["length"])
    except (TypeError, KeyError, ValueError):
        raise IntegrityError() from None
    if offset < 0 or not 0 < length <= MAX_MANIFEST_BYTES:
        raise IntegrityError()
    return offset, length
