"""Packs on the wire: which new chunks go in which pack, sealing a pack into
one reused buffer, and fetching chunks back as coalesced pack ranges
(docs/DESIGN.md "Packs", docs/FORMAT.md section 12).

Writing. The chunks of a batch the server lacks (`POST /v1/chunks/missing`)
are cut into packs of at most `PACK_TARGET` bytes, in the order the files
and their chunks come, so one pack holds neighbouring pieces of one file
(or many small pieces of many). A pack's layout depends only on its
chunks' ids and envelope lengths, so the batch declares every pack before
any is sealed; then each pack is sealed straight into a pack-sized buffer
(the chunks read back, re-hashed and encrypted on the worker pool, each
envelope written at its offset) and PUT once. At most `PACKS_IN_FLIGHT`
buffers exist, so memory is 2 x 8 MiB of packs plus one plaintext chunk
buffer per worker, whatever the file size.

Reading. A version's chunks come as `{id, url}` (a v1 chunk object) or
`{id, pack, offset, length}`. Ranges of one pack at most `READ_GAP` apart
are fetched in one GET (reading 256 KiB more costs less than a round
trip), up to `READ_SPAN` per GET; ranges are fetched in the order the file
needs them and dropped once every chunk in them has been used. Every chunk
is still verified on its own (`pipeline.open_chunk`): a wrong range is a
failed download, never wrong bytes.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .crypto import sealed_len
from .errors import IntegrityError
from .keys import Keyring
from .pack import (
    DEFAULT_GAP,
    BlobRef,
    Layout,
    coalesce,
    layout,
    new_pack_id,
    pack_size,
    seal_tail,
    write_frame,
)
from .pipeline import Span, seal_span

PACK_TARGET = 8 * 1024 * 1024  # a pack's size cap (a larger chunk gets a pack of its own)
PACKS_IN_FLIGHT = 2  # pack buffers: one being sealed while one is PUT
READ_GAP = DEFAULT_GAP  # 256 KiB: unwanted bytes worth reading to save a GET
READ_SPAN = 8 * 1024 * 1024  # one ranged GET's cap (what a download holds per range)

Body = dict[str, Any]


@dataclass(frozen=True)
class Source:
    """Where a chunk to pack is read from: a file (owned by `owner`) and a span."""

    owner: str  # the entry's file id: a failure is that file's
    path: Path
    span: Span


@dataclass
class PlannedPack:
    pack_id: str
    layout: Layout
    sources: dict[str, Source] = field(default_factory=dict)  # chunk id -> source

    def declaration(self) -> Body:
        """The batch request's `packs` item: sealed ranges only."""
        return {"pack_id": self.pack_id, "size": self.layout.size,
                "blobs": [{"chunk": r.chunk_id, "offset": r.offset, "length": r.length}
                          for r in self.layout.blobs]}

    @property
    def owners(self) -> set[str]:
        return {s.owner for s in self.sources.values()}


def plan_packs(sources: Iterable[Source], missing: set[str], target: int = PACK_TARGET,
               rand: Callable[[int], bytes] = os.urandom) -> list[PlannedPack]:
    """Cut the missing chunks (each once, first source wins) into packs."""
    packs: list[PlannedPack] = []
    current: dict[str, Source] = {}
    total = 0

    def close() -> None:
        lay = layout((c, sealed_len(s.span.size)) for c, s in current.items())
        packs.append(PlannedPack(new_pack_id(rand), lay, dict(current)))

    seen: set[str] = set()
    for src in sources:
        cid = src.span.id
        if cid not in missing or cid in seen:
            continue
        seen.add(cid)
        length = sealed_len(src.span.size)
        if current and pack_size(len(current) + 1, total + length) > target:
            close()
            current, total = {}, 0
        current[cid] = src
        total += length
    if current:
        close()
    return packs


class PackNotSent(Exception):
    """This file's new chunks shared a pack that could not be sealed."""


class PackFailed(Exception):
    """A pack could not be sealed (one of its files changed or went away)."""

    def __init__(self, owner: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.owner, self.cause = owner, cause


def seal_pack(ring: Keyring, user_id: str, plan: PlannedPack, buf: bytearray,
              take_plain: Callable[[int], Any], pool: ThreadPoolExecutor) -> memoryview:
    """Seal every blob of `plan` into `buf` at its offset (on `pool`, each
    with a plaintext buffer from `take_plain`), plus header, gap and the
    encrypted index; the view of the finished pack. Raises PackFailed."""
    lay = plan.layout
    view = memoryview(buf)[:lay.size]
    write_frame(view, lay, seal_tail(ring, user_id, plan.pack_id, lay))
    fds: dict[Path, int] = {}
    try:
        for src in plan.sources.values():
            if src.path not in fds:
                try:
                    fds[src.path] = os.open(src.path, os.O_RDONLY)
                except OSError as exc:
                    raise PackFailed(src.owner, exc) from None

        def put(ref: BlobRef) -> None:
            src = plan.sources[ref.chunk_id]
            with take_plain(src.span.size) as plain:
                try:
                    got = seal_span(ring, user_id, fds[src.path], src.span, plain,
                                    view[ref.offset:ref.end])
                except Exception as exc:  # FileChanged, OSError: that file's failure
                    raise PackFailed(src.owner, exc) from None
            if len(got) != ref.length:
                raise PackFailed(src.owner, ValueError("an envelope changed length"))

        futures = [pool.submit(put, ref) for ref in lay.blobs]
        try:
            for f in futures:
                f.result()
        finally:
            for f in futures:
                f.cancel()
            # Running ones still write into `buf` and read the fds: wait for
            # them, or the next pack sealed in this reused buffer gets their
            # envelopes at this pack's offsets (tests/client/test_packing.py).
            wait(futures)
    finally:
        for fd in fds.values():
            os.close(fd)
    return view


def send_packs(ring: Keyring, user_id: str, put: Callable[..., None],
               plans: list[PlannedPack], urls: dict[str, str], headers: dict[str, str],
               take_plain: Callable[[int], Any], workers: int,
               on_bytes: Callable[[int], None],
               on_sent: Callable[[Body], None] | None = None) -> dict[str, Exception]:
    """Seal and PUT each pack once, `PACKS_IN_FLIGHT` at a time, each in
    a reused pack buffer; `on_sent(declaration)` for each pack that
    landed, in plan order, on the calling thread. A pack that cannot be
    sealed is not sent: the file that changed gets its error, and the
    files sharing the pack (rejected by the server this time, for want
    of its chunks) get PackNotSent and go again on the next sync.
    Returns those errors by file id."""
    failed: dict[str, Exception] = {}
    if not plans:
        return failed
    free: queue.Queue[bytearray | None] = queue.Queue()
    for _ in range(PACKS_IN_FLIGHT):
        free.put(None)
    tick = threading.Lock()
    with ThreadPoolExecutor(workers) as sealers, \
            ThreadPoolExecutor(PACKS_IN_FLIGHT) as putters:
        def one(plan: PlannedPack) -> None:
            buf = free.get()
            try:
                if buf is None or len(buf) < plan.layout.size:
                    buf = None  # drop the small one before allocating
                    buf = bytearray(max(PACK_TARGET, plan.layout.size))
                put(urls[plan.pack_id], seal_pack(ring, user_id, plan, buf, take_plain,
                                                  sealers), headers)
            finally:
                free.put(buf)
            with tick:
                on_bytes(plan.layout.size)

        futures = [(plan, putters.submit(one, plan)) for plan in plans]
        for plan, future in futures:
            try:
                future.result()
            except PackFailed as exc:
                failed.setdefault(exc.owner, exc.cause)
                for owner in sorted(plan.owners - {exc.owner}):
                    failed.setdefault(owner, PackNotSent(
                        "not sent: it shared a pack with a file that changed "
                        "while it was being uploaded"))
                continue
            if on_sent is not None:
                on_sent(plan.declaration())
    return failed


# -- packs sent but not committed --------------------------------------------------
class SentPacks(Protocol):
    """Where a device remembers the packs it PUT (state.State)."""

    def sent_packs(self) -> list[Body]: ...
    def add_sent_pack(self, declaration: Body) -> None: ...
    def drop_sent_packs(self, pack_ids: Iterable[str]) -> None: ...


def reusable(sent: list[Body], missing: set[str]) -> list[Body]:
    """The remembered packs holding a chunk the server still lacks: a batch
    declares them again (their chunks are stored) instead of packing those
    chunks anew, so an interrupted upload re-sends only the packs that were
    in flight. Each chunk is taken from one pack only."""
    out: list[Body] = []
    taken: set[str] = set()
    for decl in sent:
        chunks = {b["chunk"] for b in decl["blobs"]}
        if chunks & missing and not chunks & taken:
            out.append(decl)
            taken |= chunks
    return out


def settle_sent(sent: SentPacks, new: list[str], reused: list[str],
                statuses: list[str]) -> None:
    """After a batch's verdicts: every entry accepted means its chunks are
    indexed, so none of its packs need remembering; a rejection may mean a
    reused pack is not (or no longer) stored, so it is not offered again."""
    if all(s == "accepted" for s in statuses):
        sent.drop_sent_packs([*new, *reused])
    elif any(s == "rejected" for s in statuses):
        sent.drop_sent_packs(reused)


# -- reading -------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    url: str
    byte_range: tuple[int, int] | None  # (offset, length); None: the whole object
    refs: dict[str, BlobRef]  # chunk id -> its blob (empty for a v1 chunk)


def read_plan(body: Body, order: Sequence[str]) -> tuple[list[_Job], dict[str, int]]:
    """The GETs that fetch chunks `order` (file order, repeats allowed) of
    a version body, in the order first needed, and each chunk's GET."""
    packs: dict[str, str] = body.get("packs") or {}
    where: dict[str, Body] = {}
    for c in body.get("chunks") or []:
        where[str(c["id"])] = c
    by_pack: dict[str, list[BlobRef]] = {}
    single: dict[str, str] = {}
    for cid in dict.fromkeys(order):
        c = where.get(cid)
        if c is None:
            raise IntegrityError()  # the server withheld a chunk
        if "pack" in c:
            try:
                ref = BlobRef(cid, int(c["offset"]), int(c["length"]))
                url = packs[c["pack"]]
            except (KeyError, TypeError, ValueError):
                raise IntegrityError() from None
            if ref.offset < 0 or ref.length < 1:
                raise IntegrityError()
            by_pack.setdefault(url, []).append(ref)
        else:
            single[cid] = str(c["url"])
    job_of_chunk: dict[str, _Job] = {}
    for url, refs in by_pack.items():
        for rng in coalesce(refs, READ_GAP, READ_SPAN):
            job = _Job(url, (rng.start, rng.end - rng.start), {r.chunk_id: r for r in rng.refs})
            for r in rng.refs:
                job_of_chunk[r.chunk_id] = job
    for cid, url in single.items():
        job_of_chunk[cid] = _Job(url, None, {})
    jobs: list[_Job] = []
    index: dict[int, int] = {}
    at: dict[str, int] = {}
    for cid in order:
        job = job_of_chunk[cid]
        if id(job) not in index:
            index[id(job)] = len(jobs)
            jobs.append(job)
        at[cid] = index[id(job)]
    return jobs, at


READ_AHEAD_BYTES = 24 * 1024 * 1024  # ranges fetched but not yet used up, at most


class RangedFetch:
    """`fetch(chunk_id) -> envelope` for `pipeline.decrypt_file`, called in
    file order: GETs run ahead on `pool` (at most `ahead` GETs and
    READ_AHEAD_BYTES of ranges not yet used up; the GET a chunk needs is
    always made), and a range is dropped once every chunk in it has been
    handed out.

    A pack range is read into a range buffer that is reused once the range
    is dropped (`get(url, range, into=buffer)`), so a download holds a few
    READ_SPAN buffers for its whole length. Allocating one per GET grew the
    1 GiB download's RSS to ~145 MiB: glibc serves a freed 8 MiB block
    again from the heap (its mmap threshold slides up to it), where the
    next ones fragment (benchmarks/README.md, "The 1 GiB sync")."""

    def __init__(self, get: Callable[..., bytes | memoryview], body: Body,
                 order: Sequence[str], pool: ThreadPoolExecutor, ahead: int,
                 on_bytes: Callable[[int], None]) -> None:
        self._get, self._pool, self._ahead, self._on_bytes = get, pool, ahead, on_bytes
        self._jobs, self._at = read_plan(body, order)
        self._left = Counter(self._at[c] for c in order)
        self._live: dict[int, Future[bytes | memoryview]] = {}
        self._bufs: dict[int, bytearray] = {}  # job -> the range buffer it reads into
        self._free: list[bytearray] = []
        self._next = 0

    def __call__(self, chunk_id: str) -> bytes:
        j = self._at.get(chunk_id)
        if j is None:
            raise IntegrityError()
        while self._next <= j or (self._next < len(self._jobs)
                                  and len(self._live) < self._ahead
                                  and self._live_bytes() < READ_AHEAD_BYTES):
            self._start(self._next)
            self._next += 1
        data = self._live[j].result()
        job = self._jobs[j]
        ref = job.refs.get(chunk_id)
        if ref is None:
            envelope = bytes(data)
        else:
            assert job.byte_range is not None
            lo = ref.offset - job.byte_range[0]
            if lo + ref.length > len(data):
                raise IntegrityError()
            envelope = bytes(memoryview(data)[lo:lo + ref.length])  # the buffer is reused
        self._left[j] -= 1
        if not self._left[j]:
            del self._live[j]  # every chunk in it used: let the range go
            buf = self._bufs.pop(j, None)
            if buf is not None:
                self._free.append(buf)
        self._on_bytes(len(envelope))
        return envelope

    def _start(self, n: int) -> None:
        """Submit GET `n`. A range of at least half a READ_SPAN reads into a
        free READ_SPAN buffer (or a new one, when all are held by ranges in
        flight or not used up); a smaller one (a file's end, around an
        edit) is read as bytes of its own size, so that a run of small
        ranges never holds a big buffer each."""
        job = self._jobs[n]
        if job.byte_range is None or job.byte_range[1] < READ_SPAN // 2:
            self._live[n] = self._pool.submit(
                *(self._get, job.url) if job.byte_range is None
                else (self._get, job.url, job.byte_range))
            return
        size = job.byte_range[1]
        buf = next((b for b in self._free if len(b) >= size), None)
        if buf is None:
            buf = bytearray(max(READ_SPAN, size))
        else:
            self._free.remove(buf)
        self._bufs[n] = buf
        self._live[n] = self._pool.submit(self._get, job.url, job.byte_range, into=buf)

    def _live_bytes(self) -> int:
        """Memory held by the ranges in flight or not used up: a range's
        buffer, else its length (a v1 chunk counts 1 MiB)."""
        return sum(len(self._bufs[j]) if j in self._bufs
                   else r[1] if (r := self._jobs[j].byte_range) else 1 << 20
                   for j in self._live)

    def cancel(self) -> None:
        for f in self._live.values():
            f.cancel()
