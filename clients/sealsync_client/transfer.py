"""Moving one file version to and from the server.

Upload: chunk and hash the file (no encryption yet), seal the manifest, ask
the server which chunks it lacks, then read back, re-hash, encrypt and PUT
only those, several at once on a thread pool (each worker reuses one
buffer). Chunks the server has are never read twice or encrypted, so a
small edit to a big file costs one hashing pass plus the changed chunks.
The manifest goes last, because its arrival in staging is what triggers the
commit. Then one long poll for the decision.

Download (download.py): open the manifest for exactly (file, revision),
fetch and verify every chunk, resume a killed download from its part file.
"""
from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from .api import Api, ApiError, Body, QuotaError
from .bars import Bar, NoBar, Progress
from .buffers import Buffers as Buffers  # tests import it from here
from .chunk_delta import against_base, as_listed, chunks_sha256, revision_of
from .chunking import TOP_TIER, Chunker, tier_for
from .crypto import sealed_len
from .devices import DeviceKey
from .download import Version, fetch_version, open_version
from .errors import IntegrityError
from .fingerprint import HashingReader, local_hasher
from .keys import Keyring
from .known_chunks import KnownChunks
from .manifest import (
    INLINE_MAX,
    MAX_CHUNKS,
    ChunkRef,
    Manifest,
    ManifestPlace,
    seal_manifest,
)
from .names import UnsafePath as UnsafePath  # callers import them from here
from .names import shown
from .packing import (
    PlannedPack,
    SentPacks,
    Source,
    plan_packs,
    reusable,
    send_packs,
    settle_sent,
)
from .pipeline import FileChanged as FileChanged  # engine imports it from here
from .pipeline import Span, chunk_spans, seal_span
from .resume import SentChunks


@dataclass(frozen=True)
class Prepared:
    """A version sealed for a batch: its manifest envelope and, for a file,
    the spans whose chunks the server may still need."""

    rel: str
    file_id: str
    base: int
    envelope: bytes
    tombstone: bool
    path: Path | None = None
    spans: list[Span] = field(default_factory=list)
    st: os.stat_result | None = None
    digest: str | None = None  # the fingerprint's content hash, when asked for


BATCH_FILES_IN_FLIGHT = 4  # files whose chunks upload at once (each with `workers` PUTs)


@dataclass(frozen=True)
class SentBatch:
    """A batch whose bundle is on its way to commit (`batch_id` None: every
    entry failed here, nothing was sent); each failed file's error."""

    batch_id: str | None
    items: Sequence[Prepared]
    failed: dict[str, Exception]
    packs: Sequence[str] = ()  # the packs PUT for it, and those declared again
    reused: Sequence[str] = ()


class Transfer:
    def __init__(self, api: Api, ring: Keyring, user_id: str, device: str,
                 workers: int = 8, progress: Progress | None = None, *,
                 sign: Callable[[ManifestPlace, Manifest], Manifest],
                 sent_packs: SentPacks | None = None,
                 device_key: DeviceKey | None = None) -> None:
        self.api, self.ring, self.user_id, self.device = api, ring, user_id, device
        self.sent_packs = sent_packs  # packs PUT, not yet committed: re-declared, not re-sent
        self.sign = sign  # links a version into the signed history (history.py)
        # signs each batch entry for the server (devices.py); without it the
        # server rejects every entry as unsigned
        self.device_key = device_key
        self.workers = workers
        self.progress = progress
        self.chunkers = [Chunker(ring.chunker, tier) for tier in range(TOP_TIER + 1)]
        self.buffers = Buffers(workers)
        self.sent: SentChunks | None = None  # chunks a killed pass already PUT (resume.py)
        self.known: KnownChunks | None = None  # each file's last stored chunks (known_chunks.py)
        # One hashing pass at a time: a Chunker is not thread-safe, and this
        # bounds the chunkers' read buffers when several files upload at once.
        self._lock = threading.Lock()

    # -- upload -------------------------------------------------------------
    def _bar(self, label: str, total: int) -> AbstractContextManager[Bar]:
        if self.progress is None:
            return nullcontext(NoBar())
        return self.progress(label, total)

    def prepare(self, root: Path, rel: str, file_id: str, base: int,
                stored: str | None = None, *, local_hash: bool = False) -> Prepared:
        """Chunk, hash and seal `rel` as revision base + 1 of `file_id`, named
        `stored` in its manifest (default: `rel`); nothing is sent yet. With
        `local_hash`, the same read also takes the fingerprint's content
        hash of exactly the bytes chunked (`Prepared.digest`)."""
        path = root / rel
        stored = rel if stored is None else stored
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):  # replaced since the scan (a FIFO would block)
            raise FileChanged(f"{shown(rel)} is no longer a regular file")
        spans: list[Span] = []
        digest: str | None = None
        if st.st_size <= INLINE_MAX:
            data = path.read_bytes()
            if local_hash:
                h = local_hasher()
                h.update(data)
                digest = h.hexdigest()
            manifest = Manifest(stored, len(data), st.st_mtime_ns, st.st_mode, self.device,
                                inline=data)
        else:
            spans, digest = self._spans(path, st.st_size, local_hash)
            manifest = Manifest(stored, sum(s.size for s in spans), st.st_mtime_ns, st.st_mode,
                                self.device, tuple(ChunkRef(s.id, s.size) for s in spans))
        return replace(self.seal(rel, file_id, base, manifest, path, spans, st), digest=digest)

    def seal(self, rel: str, file_id: str, base: int, manifest: Manifest,
             path: Path | None = None, spans: list[Span] | None = None,
             st: os.stat_result | None = None) -> Prepared:
        """Sign and seal a manifest (a tombstone needs no file) for a batch."""
        place = ManifestPlace.for_upload(self.user_id, file_id, base)
        envelope = seal_manifest(self.ring, place, self.sign(place, manifest))
        return Prepared(rel, file_id, base, envelope, manifest.tombstone, path,
                        spans or [], st)

    def upload(self, root: Path, rel: str, file_id: str, base: int,
               stored: str | None = None) -> Body:
        """One file as a batch of one; its decided status."""
        result = self.upload_batch([self.prepare(root, rel, file_id, base, stored)])[0]
        if isinstance(result, Exception):
            raise result
        return result

    def upload_batch(self, items: Sequence[Prepared]) -> list[Body | Exception]:
        """Send prepared versions as ONE batch (docs/DESIGN.md, "Batches"):
        one request, the chunks the server lacks, one bundle of manifests,
        one long poll. Returns each entry's verdict, in order; an entry whose
        chunks could not be sent here carries that error instead, unless the
        server accepted it anyway (its chunks were stored already)."""
        return self.wait_for(self.send_batch(items))

    def wait_for(self, sent: SentBatch) -> list[Body | Exception]:
        """The verdicts of a batch `send_batch` sent (one long poll or push)."""
        if sent.batch_id is None:
            return [sent.failed[it.file_id] for it in sent.items]
        items, failed = sent.items, sent.failed
        verdicts = self.api.wait_batch(sent.batch_id)["entries"]
        if self.sent is not None:  # decided: known to the server now, or to be sent again
            self.sent.settled(s.id for it in items for s in it.spans)
        if [v.get("file_id") for v in verdicts] != [it.file_id for it in items]:
            raise IntegrityError("the server answered for other entries than the batch had")
        if self.sent_packs is not None:
            settle_sent(self.sent_packs, list(sent.packs), list(sent.reused),
                        [v["status"] for v in verdicts])
        if self.known is not None:  # the list as the server now holds it
            for it, refs, v in zip(items, entry_chunks(items), verdicts, strict=True):
                if v["status"] == "accepted" and it.path is not None:
                    self.known.record(it.file_id, [cid for cid, _ in refs],
                                      revision_of(v))
        return [failed[it.file_id] if it.file_id in failed and v["status"] == "rejected"
                else v for it, v in zip(items, verdicts, strict=True)]

    def send_batch(self, items: Sequence[Prepared]) -> SentBatch:
        """The sending half of upload_batch: the request, the lacking chunks
        and the bundle. The server commits while the caller prepares the
        next batch; `wait_for` collects the verdicts."""
        # A signed tombstone is a version like any other to the server (as in
        # v1): "tombstone" there means the server's own, unsigned delete.
        # sorted: the server learns which chunks, never their order
        chunks = entry_chunks(items)
        entries = [{"file_id": it.file_id, "base_revision": it.base,
                    "manifest_size": len(it.envelope),
                    "chunks": [{"id": cid, "size": size} for cid, size in refs]}
                   for it, refs in zip(items, chunks, strict=True)]
        against = self._against_bases(items, chunks, entries)
        sources = [Source(it.file_id, it.path, sp) for it in items if it.path is not None
                   for sp in it.spans]
        # not asked: the chunks of each file's last version here (a stale one
        # is presigned in `chunk_urls` below, as any chunk the server lacks)
        stored = self.known.of(it.file_id for it in items if it.spans) if self.known else set()
        wanted = sorted({src.span.id for src in sources} - stored)
        missing = set(self.api.missing_chunks(wanted)) if wanted else set()
        # packs an interrupted earlier upload PUT: declared again, not re-sent
        reused = reusable(self.sent_packs.sent_packs() if self.sent_packs else [], missing)
        plans = plan_packs(sources, missing - {b["chunk"] for d in reused for b in d["blobs"]})
        # The bundle is known before the request: its digest is signed into
        # its PUT URL, so whoever holds the URL can PUT only these bytes.
        bundle = self._bundle(items, chunks)
        declared = [p.declaration() for p in plans] + reused
        digest = hashlib.sha256(bundle).hexdigest()
        try:
            try:
                ticket = self.api.create_batch(against, declared, digest)
            except ApiError as exc:
                if against is entries or exc.status != 400:
                    raise
                # A base is not what this device recorded (or the server does not
                # know ranges): the full lists, which need no base.
                ticket = self.api.create_batch(entries, declared, digest)
        except ApiError as exc:  # a remembered pack it refuses is not offered again
            if exc.status == 400 and reused and self.sent_packs is not None:
                self.sent_packs.drop_sent_packs([d["pack_id"] for d in reused])
            raise
        pack_urls: dict[str, str] = ticket.get("pack_urls") or {}
        if set(pack_urls) != {p.pack_id for p in plans} | {d["pack_id"] for d in reused}:
            raise ApiError("the server answered for other packs than the batch declared")
        # Chunks the server asks for one by one: none, unless it lost track
        # of one between the lookup and the batch (v1 chunk objects).
        need: dict[str, str] = ticket.get("chunk_urls") or {}
        if self.sent is not None:  # S3 has them, uncommitted: the commit checks they exist
            need = {c: url for c, url in need.items() if c not in self.sent}
        headers: dict[str, str] = ticket.get("chunk_headers") or {}
        todo: list[tuple[Prepared, list[Span]]] = []
        sent: set[str] = set()
        for it in items:  # each lacking chunk once, from the first file that has it
            spans = [s for s in it.spans if s.id in need and s.id not in sent]
            sent.update(s.id for s in spans)
            if spans:
                todo.append((it, list({s.id: s for s in spans}.values())))
        if sent != set(need):
            raise ApiError("the server asked for chunks this batch does not have")
        failed = self._put_packs(plans, pack_urls, headers)
        with ThreadPoolExecutor(BATCH_FILES_IN_FLIGHT) as pool:
            futures = {it.file_id: pool.submit(self._put_file_chunks, it, spans, need, headers)
                       for it, spans in todo}
            for file_id, future in futures.items():
                try:
                    future.result()
                except (FileChanged, OSError) as exc:
                    failed[file_id] = exc  # its entry is rejected unless already stored
        if len(failed) == len(items):  # nothing left to commit: let the batch expire
            return SentBatch(None, items, failed)
        # create-only and checksum-bound: exactly the headers the URL was signed with
        self.api.put_blob(ticket["bundle_url"], bundle,
                          ticket.get("bundle_headers") or {})
        return SentBatch(str(ticket["batch_id"]), items, failed,
                         [p.pack_id for p in plans], [d["pack_id"] for d in reused])

    def _against_bases(self, items: Sequence[Prepared], chunks: list[list[tuple[str, int]]],
                       entries: list[Body]) -> list[Body]:
        """`entries`, each edit whose base's chunk list this device recorded
        (known_chunks.py) sending its chunks as ranges of it where that is
        shorter (chunk_delta.py); `entries` itself when none does."""
        out, changed = list(entries), False
        for i, (it, refs) in enumerate(zip(items, chunks, strict=True)):
            base = self.known.base(it.file_id, it.base) if self.known and refs else None
            if base is None:
                continue
            delta = against_base(base, refs)
            if len(delta) < len(refs):
                out[i] = {**entries[i], "chunks": delta,
                          "chunks_sha256": chunks_sha256([cid for cid, _ in refs])}
                changed = True
        return out if changed else entries

    def _bundle(self, items: Sequence[Prepared], chunks: list[list[tuple[str, int]]]) -> bytes:
        """The manifests in entry order, then this device's signature of each
        entry (FORMAT.md section 13): what the server checks before commit."""
        sigs = [b""] * len(items) if self.device_key is None else [
            self.device_key.sign_entry(it.file_id, it.base, False, it.envelope,
                                       [cid for cid, _ in refs])
            for it, refs in zip(items, chunks, strict=True)]
        return b"".join(it.envelope for it in items) + b"".join(sigs)

    def _put_packs(self, plans: list[PlannedPack], urls: dict[str, str],
                   headers: dict[str, str]) -> dict[str, Exception]:
        """packing.send_packs with this Transfer's buffers, pool size and bar;
        each pack PUT is remembered (when a store is given) as it lands."""
        with self._bar(f"up   {len(plans)} pack(s)",
                       sum(p.layout.size for p in plans)) as bar:
            return send_packs(self.ring, self.user_id, self.api.put_blob, plans, urls, headers,
                              self.buffers.plain, self.workers, bar.update,
                              self.sent_packs.add_sent_pack if self.sent_packs else None)

    def _put_file_chunks(self, it: Prepared, todo: list[Span], need: dict[str, str],
                         headers: dict[str, str]) -> None:
        assert it.path is not None and it.st is not None
        with self._bar(f"up   {shown(it.rel)}", sum(sealed_len(s.size) for s in todo)) as bar:
            self._put_chunks(it.path, todo, need, headers, bar.update)

    def _spans(self, path: Path, size: int,
               local_hash: bool = False) -> tuple[list[Span], str | None]:
        """Chunk and hash at the tier for this size (and, with `local_hash`,
        take the fingerprint's content hash in the same read); a file whose
        content cuts into more than the server's 4096 chunks goes up a tier
        (and fails clearly past the top one)."""
        tier = tier_for(size)
        while True:
            digest = None
            with self._lock, open(path, "rb", buffering=0) as raw:
                if local_hash:
                    reader = HashingReader(raw, helper=size >= HashingReader.HELPER_MIN)
                    try:
                        spans = chunk_spans(reader, self.ring, self.chunkers[tier])
                        digest = reader.hexdigest()
                    finally:
                        reader.close()
                else:
                    spans = chunk_spans(raw, self.ring, self.chunkers[tier])
            if len(spans) <= MAX_CHUNKS:
                return spans, digest
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
            if self.sent is not None:
                self.sent.add(span.id)
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

    # -- download (download.py) -------------------------------------------------
    def version(self, file_id: str, revision: int | None = None) -> Version:
        """A version's manifest, opened only for the place it was sealed for."""
        return open_version(self.api, self.ring, self.user_id, file_id, revision)

    def download(self, v: Version, dest: Path) -> None:
        """Write a version's content to `dest` (atomically, all chunks
        verified), resuming from a part file an earlier attempt left."""
        fetch_version(self.api, self.ring, self.user_id, self.workers, self._bar, v, dest)
        if self.known is not None:
            assert v.manifest is not None  # fetch_version wrote it
            self.known.record(v.file_id, *as_listed(
                [r.id for r in v.manifest.chunks], v.body.get("chunks"), v.revision))


def entry_chunks(items: Sequence[Prepared]) -> list[list[tuple[str, int]]]:
    """Each item's chunks as its batch entry lists them: (id, sealed size),
    sorted, repeats kept. The server learns which chunks, never their order."""
    return [sorted((s.id, sealed_len(s.size)) for s in it.spans) for it in items]

