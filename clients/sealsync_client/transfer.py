"""Moving one file version to and from the server.

Upload: chunk and hash the file (no encryption yet), seal the manifest, ask
the server which chunks it lacks, then encrypt and PUT only those, several at
once on a thread pool; the manifest goes last, because its arrival in
staging is what triggers the commit. Then one long poll for the decision.

Download: open the manifest for exactly (file, revision), fetch chunks by
presigned GET with a few requests in flight, and let `decrypt_file` verify
every chunk before anything is renamed into place.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from .api import Api
from .chunking import Chunker
from .crypto import sealed_len
from .errors import IntegrityError, SealsyncClientError
from .keys import Keyring
from .manifest import INLINE_MAX, ChunkRef, Manifest, ManifestPlace, open_manifest, seal_manifest
from .pipeline import decrypt_file, encrypt_file
from .state import META_DIR

Body = dict[str, Any]


class Bar(Protocol):
    def update(self, n_steps: int) -> None: ...


class NoBar:
    def update(self, n_steps: int) -> None:
        pass


Progress = Callable[[str, int], AbstractContextManager[Bar]]
"""(label, total bytes) -> a progress bar (click.progressbar fits)."""


class FileChanged(SealsyncClientError):
    """The file changed while it was being uploaded; the next sync retries it."""


class UnsafePath(IntegrityError):
    """A manifest names a path outside the sync folder (or inside .sealsync)."""


def safe_rel(path: str) -> str:
    """Confine a manifest's path to the sync root: the server must not be able
    to make us write ../../.bashrc, an absolute path, or our own state."""
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or "\\" in path or parts[0] == META_DIR \
            or any(p in ("", ".", "..") for p in parts) or path != "/".join(parts):
        raise UnsafePath(f"refusing a path outside the sync folder: {path!r}")
    return path


@dataclass(frozen=True)
class Version:
    """A remote version: the server's view and, unless deleted, its manifest."""

    file_id: str
    revision: int
    body: Body
    manifest: Manifest | None


class Transfer:
    def __init__(self, api: Api, ring: Keyring, user_id: str, device: str,
                 workers: int = 8, progress: Progress | None = None, *,
                 sign: Callable[[ManifestPlace, Manifest], Manifest]) -> None:
        self.api, self.ring, self.user_id, self.device = api, ring, user_id, device
        self.sign = sign  # links a version into the signed history (history.py)
        self.workers = workers
        self.progress = progress
        self.chunker = Chunker(ring.chunker)
        self._lock = threading.Lock()  # one Chunker is not thread-safe

    # -- upload -------------------------------------------------------------
    def _bar(self, label: str, total: int) -> AbstractContextManager[Bar]:
        if self.progress is None:
            return nullcontext(NoBar())
        return self.progress(label, total)

    def upload(self, root: Path, rel: str, file_id: str, base: int) -> Body:
        """Upload `rel` as revision base + 1 of `file_id`; the decided status."""
        path = root / rel
        st = path.stat()
        refs: tuple[ChunkRef, ...] = ()
        if st.st_size <= INLINE_MAX:
            data = path.read_bytes()
            manifest = Manifest(rel, len(data), st.st_mtime_ns, st.st_mode, self.device,
                                inline=data)
        else:
            with self._lock:
                refs = tuple(ChunkRef(self.ring.chunk_id_of(view), len(view))
                             for _, view in self.chunker.split(path))
            manifest = Manifest(rel, sum(r.size for r in refs), st.st_mtime_ns, st.st_mode,
                                self.device, refs)
        place = ManifestPlace.for_upload(self.user_id, file_id, base)
        envelope = seal_manifest(self.ring, place, self.sign(place, manifest))
        ticket = self.api.create_upload(file_id, base, len(envelope),
                                        [(r.id, sealed_len(r.size)) for r in refs])
        need: dict[str, str] = ticket.get("chunk_urls") or {}
        if need:
            total = sum(sealed_len(r.size) for r in refs if r.id in need)
            with self._bar(f"up   {rel}", total) as bar:
                self._put_chunks(path, refs, need, ticket.get("chunk_headers") or {},
                                 bar.update)
        self.api.put_blob(ticket["manifest_url"], envelope)
        return self.api.wait_upload(ticket["upload_id"])

    def _put_chunks(self, path: Path, refs: tuple[ChunkRef, ...], need: dict[str, str],
                    headers: dict[str, str], on_bytes: Callable[[int], None] | None) -> None:
        slots = threading.BoundedSemaphore(self.workers * 2)  # bounds envelopes in memory
        futures: list[Future[None]] = []
        sent: set[str] = set()
        tick = threading.Lock()  # progress bars are not thread-safe

        def put(url: str, envelope: bytes, size: int) -> None:
            try:
                self.api.put_blob(url, envelope, headers)
                if on_bytes is not None:
                    with tick:
                        on_bytes(len(envelope))
            finally:
                slots.release()

        with ThreadPoolExecutor(self.workers) as pool:
            count = 0
            with self._lock:
                for i, sc in enumerate(encrypt_file(path, self.ring, self.user_id,
                                                    chunker=self.chunker)):
                    count = i + 1
                    if i >= len(refs) or sc.id != refs[i].id:
                        break  # the content moved under us
                    if sc.id in need and sc.id not in sent:
                        sent.add(sc.id)
                        slots.acquire()
                        futures.append(pool.submit(put, need[sc.id], sc.envelope, sc.size))
            for f in futures:
                f.result()
        if count != len(refs) or not sent >= set(need):
            raise FileChanged(f"{path.name} changed while it was being uploaded")

    def delete(self, file_id: str, base: int) -> Body:
        return self.api.wait_upload(self.api.delete_file(file_id, base))

    # -- download -------------------------------------------------------------
    def version(self, file_id: str, revision: int | None = None) -> Version:
        """A version's manifest, opened only for the place it was sealed for."""
        body = self.api.get_file(file_id, revision)
        rev = int(body["revision"])
        if revision is not None and rev != revision:
            raise IntegrityError()  # the server answered for another revision
        if body.get("deleted"):
            return Version(file_id, rev, body, None)
        envelope = self.api.get_blob(body["manifest_url"])
        manifest = open_manifest(self.ring, ManifestPlace.for_download(self.user_id, file_id,
                                                                       rev), envelope)
        safe_rel(manifest.path)
        return Version(file_id, rev, body, manifest)

    def download(self, v: Version, dest: Path) -> None:
        """Write a version's content to `dest` (atomically, all chunks verified)."""
        assert v.manifest is not None
        urls = {c["id"]: c["url"] for c in v.body.get("chunks") or []}
        ids = iter([r.id for r in v.manifest.chunks])
        inflight: deque[tuple[str, Future[bytes]]] = deque()
        total = sum(sealed_len(r.size) for r in v.manifest.chunks)
        with ThreadPoolExecutor(self.workers) as pool, \
                self._bar(f"down {v.manifest.path}", total) as bar:
            def fetch(chunk_id: str) -> bytes:
                while len(inflight) < self.workers * 2:
                    nxt = next(ids, None)
                    if nxt is None:
                        break
                    if nxt not in urls:
                        raise IntegrityError()  # the server withheld a chunk
                    inflight.append((nxt, pool.submit(self.api.get_blob, urls[nxt])))
                want, future = inflight.popleft()
                if want != chunk_id:
                    raise IntegrityError()
                envelope = future.result()
                bar.update(len(envelope))
                return envelope

            os.makedirs(dest.parent, exist_ok=True)
            decrypt_file(v.manifest, self.ring, self.user_id, fetch, dest)
