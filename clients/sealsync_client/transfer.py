"""Moving one file version to and from the server.

Upload: chunk and hash the file (no encryption yet), seal the manifest, ask
the server which chunks it lacks, then read back, re-hash, encrypt and PUT
only those, several at once on a thread pool (each worker reuses one
buffer). Chunks the server has are never read twice or encrypted, so a
small edit to a big file costs one hashing pass plus the changed chunks.
The manifest goes last, because its arrival in staging is what triggers the
commit. Then one long poll for the decision.

Download: open the manifest for exactly (file, revision), fetch chunks by
presigned GET with a few requests in flight, and let `decrypt_file` verify
every chunk before anything is renamed into place. A failed or killed
download keeps its part file (dest + ".part"); the next one for the same
dest re-hashes it and fetches only the chunks after its verified prefix.
"""
from __future__ import annotations

import os
import queue
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .api import Api, ApiError, QuotaError
from .chunking import TOP_TIER, Chunker, tier_for
from .crypto import padded_len, sealed_len
from .errors import IntegrityError
from .keys import Keyring
from .manifest import (
    INLINE_MAX,
    MAX_CHUNKS,
    ChunkRef,
    Manifest,
    ManifestPlace,
    open_manifest,
    seal_manifest,
)
from .names import UnsafePath as UnsafePath  # callers import them from here
from .names import check_stored, shown
from .pipeline import FileChanged as FileChanged  # engine imports it from here
from .pipeline import Span, chunk_spans, decrypt_file, seal_span

Body = dict[str, Any]


class Bar(Protocol):
    def update(self, n_steps: int) -> None: ...


class NoBar:
    def update(self, n_steps: int) -> None:
        pass


Progress = Callable[[str, int], AbstractContextManager[Bar]]
"""(label, total bytes) -> a progress bar (click.progressbar fits)."""


class Buffers:
    """At most `count` (plaintext, envelope) buffer pairs, shared by every
    upload of one Transfer: however many files upload at once, sealing
    memory stays at count x 2 x the largest chunk (2 MiB per pair at tier 0).
    """

    def __init__(self, count: int) -> None:
        self._free: queue.LifoQueue[tuple[bytearray, bytearray] | None] = queue.LifoQueue()
        for _ in range(count):
            self._free.put(None)  # allocated on first use

    @contextmanager
    def take(self, chunk_size: int) -> Iterator[tuple[bytearray, bytearray]]:
        """A pair that fits a chunk of `chunk_size` bytes; waits while all are in use."""
        pair = self._free.get()
        try:
            if pair is None or len(pair[0]) < padded_len(chunk_size):
                pair = None  # drop the small one before allocating
                pair = bytearray(padded_len(chunk_size)), bytearray(sealed_len(chunk_size))
            yield pair
        finally:
            self._free.put(pair)


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
        self.chunkers = [Chunker(ring.chunker, tier) for tier in range(TOP_TIER + 1)]
        self.buffers = Buffers(workers)
        # One hashing pass at a time: a Chunker is not thread-safe, and this
        # bounds the chunkers' read buffers when several files upload at once.
        self._lock = threading.Lock()

    # -- upload -------------------------------------------------------------
    def _bar(self, label: str, total: int) -> AbstractContextManager[Bar]:
        if self.progress is None:
            return nullcontext(NoBar())
        return self.progress(label, total)

    def upload(self, root: Path, rel: str, file_id: str, base: int,
               stored: str | None = None) -> Body:
        """Upload `rel` as revision base + 1 of `file_id`, named `stored` in
        its manifest (default: `rel`); the decided status."""
        path = root / rel
        stored = rel if stored is None else stored
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):  # replaced since the scan (a FIFO would block)
            raise FileChanged(f"{shown(rel)} is no longer a regular file")
        spans: list[Span] = []
        if st.st_size <= INLINE_MAX:
            data = path.read_bytes()
            manifest = Manifest(stored, len(data), st.st_mtime_ns, st.st_mode, self.device,
                                inline=data)
        else:
            spans = self._spans(path, st.st_size)
            manifest = Manifest(stored, sum(s.size for s in spans), st.st_mtime_ns, st.st_mode,
                                self.device, tuple(ChunkRef(s.id, s.size) for s in spans))
        place = ManifestPlace.for_upload(self.user_id, file_id, base)
        envelope = seal_manifest(self.ring, place, self.sign(place, manifest))
        ticket = self.api.create_upload(file_id, base, len(envelope),
                                        [(s.id, sealed_len(s.size)) for s in spans])
        need: dict[str, str] = ticket.get("chunk_urls") or {}
        if need:
            first: dict[str, Span] = {}  # each lacking id once, at its first place in the file
            for span in spans:
                if span.id in need:
                    first.setdefault(span.id, span)
            todo = list(first.values())
            if len(todo) != len(need):
                raise ApiError("the server asked for chunks this version does not have")
            with self._bar(f"up   {shown(rel)}", sum(sealed_len(s.size) for s in todo)) as bar:
                self._put_chunks(path, todo, need, ticket.get("chunk_headers") or {},
                                 bar.update)
        now = path.stat()
        if (now.st_size, now.st_mtime_ns, now.st_ino) != (st.st_size, st.st_mtime_ns, st.st_ino):
            raise FileChanged(f"{shown(rel)} changed while it was being uploaded")
        self.api.put_blob(ticket["manifest_url"], envelope)
        return self.api.wait_upload(ticket["upload_id"])

    def _spans(self, path: Path, size: int) -> list[Span]:
        """Chunk and hash at the tier for this size; a file whose content cuts
        into more than the server's 4096 chunks goes up a tier (and fails
        clearly past the top one)."""
        tier = tier_for(size)
        while True:
            with self._lock:
                spans = chunk_spans(path, self.ring, self.chunkers[tier])
            if len(spans) <= MAX_CHUNKS:
                return spans
            if tier == TOP_TIER:
                raise QuotaError(f"{path.name} is too large: {len(spans)} chunks, and a "
                                 f"version holds at most {MAX_CHUNKS}", 413)
            tier += 1

    def _put_chunks(self, path: Path, todo: list[Span], need: dict[str, str],
                    headers: dict[str, str], on_bytes: Callable[[int], None] | None) -> None:
        """Read back, seal and PUT `todo` on the pool, each chunk in a buffer
        pair from `self.buffers`: no chunk-sized object is allocated."""
        largest = max(s.size for s in todo)
        tick = threading.Lock()  # progress bars are not thread-safe

        def put(span: Span) -> None:
            with self.buffers.take(largest) as (buf, out):
                envelope = seal_span(self.ring, self.user_id, fd, span, buf, out)
                self.api.put_blob(need[span.id], envelope, headers)
            if on_bytes is not None:
                with tick:
                    on_bytes(sealed_len(span.size))

        fd = os.open(path, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                futures = [pool.submit(put, span) for span in todo]
                try:
                    for f in futures:
                        f.result()
                finally:
                    for f in futures:
                        f.cancel()  # after a failure, start nothing more
        finally:
            os.close(fd)

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
        check_stored(manifest.path)
        return Version(file_id, rev, body, manifest)

    def download(self, v: Version, dest: Path) -> None:
        """Write a version's content to `dest` (atomically, all chunks verified).

        Resumes from `pipeline.part_path(dest)` when an earlier attempt left
        one: its verified prefix counts as done on the progress bar at once,
        and only the chunks after it are fetched.
        """
        assert v.manifest is not None
        refs = v.manifest.chunks
        urls = {c["id"]: c["url"] for c in v.body.get("chunks") or []}
        ids: Iterator[str] = iter(())  # set once the resumed prefix is known
        inflight: deque[tuple[str, Future[bytes]]] = deque()
        total = sum(sealed_len(r.size) for r in refs)
        with ThreadPoolExecutor(self.workers) as pool, \
                self._bar(f"down {shown(v.manifest.path)}", total) as bar:
            def resumed(done: int, _bytes: int) -> None:
                nonlocal ids
                ids = iter([r.id for r in refs[done:]])
                if done:
                    bar.update(sum(sealed_len(r.size) for r in refs[:done]))

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
            try:
                decrypt_file(v.manifest, self.ring, self.user_id, fetch, dest,
                             on_resume=resumed)
            finally:
                for _, future in inflight:
                    future.cancel()  # after a failure, start no more GETs
