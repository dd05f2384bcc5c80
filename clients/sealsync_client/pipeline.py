"""Chunk envelopes, and the file pipelines: path -> sealed chunks -> path.

A chunk envelope is bound to (keyring, user, chunk id). It is deliberately
*not* bound to a file or a position: chunks are stored once per user at
chunks/{user}/{chunk_id} and shared by every file and revision that contains
them (that is the dedup). A chunk's file and place come from the manifest's
ordered, authenticated chunk list instead; opening each chunk under the id the
manifest names *at that position*, and re-hashing its plaintext, catches a
server that swaps chunks between files, reorders them, or truncates a file.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from . import crypto
from .chunking import Chunker, Source, tier_for
from .errors import IntegrityError, SealsyncClientError
from .keys import Keyring
from .manifest import Manifest
from .wire import chunk_id_bytes, user_id_bytes

Fetch = Callable[[str], bytes]
"""Returns the stored envelope for a chunk id (e.g. a presigned GET)."""


class FileChanged(SealsyncClientError):
    """The file changed while it was being uploaded; the next sync retries it."""


class Span(NamedTuple):
    """Where one chunk lies in a file, and its id: all an upload keeps per chunk."""

    offset: int
    size: int
    id: str  # 64 lowercase hex


class SealedChunk(NamedTuple):
    """One chunk ready to upload: PUT `envelope` at chunks/{user}/{id}."""

    id: str  # 64 lowercase hex
    size: int  # plaintext bytes (goes in the manifest)
    envelope: bytes  # what the server stores; len() is the upload size
    offset: int  # where the chunk starts in the file


def _chunk_context(ring: Keyring, uid: bytes, cid: bytes) -> bytes:
    return ring.keyring_id + uid + cid


def seal_chunk(ring: Keyring, user_id: str, data: bytes | bytearray | memoryview,
               *, rand: crypto.Random = os.urandom,
               scratch: bytearray | None = None) -> tuple[str, bytes]:
    """(chunk id, envelope) for one plaintext chunk."""
    cid = crypto.chunk_hash(ring.chunk_id, data)
    envelope = crypto.seal(ring.content, crypto.KIND_CHUNK, data,
                           _chunk_context(ring, user_id_bytes(user_id), cid),
                           rand=rand, scratch=scratch)
    return cid.hex(), envelope


def seal_span(ring: Keyring, user_id: str, fd: int, span: Span, buf: bytearray,
              out: bytearray | memoryview, *, rand: crypto.Random = os.urandom) -> memoryview:
    """Read one chunk back from an open file into `buf` and seal it into `out`.

    `buf` must hold padded_len(span.size) bytes and `out` sealed_len of it;
    an uploader reuses both from chunk to chunk, so nothing chunk-sized is
    allocated or copied. Returns the view of `out` holding the envelope.
    Raises FileChanged unless the bytes still hash to the id the manifest
    names.
    """
    view = memoryview(buf)[:span.size]
    if _read_at(fd, view, span.offset) != span.size \
            or crypto.chunk_hash(ring.chunk_id, view) != chunk_id_bytes(span.id):
        raise FileChanged("the file changed while it was being uploaded")
    return crypto.seal_into(ring.content, crypto.KIND_CHUNK, buf, span.size,
                            _chunk_context(ring, user_id_bytes(user_id),
                                           chunk_id_bytes(span.id)), out, rand=rand)


_seek_lock = threading.Lock()


def _read_at(fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `offset` without moving a shared file position
    (several threads read one fd); the byte count, short only at EOF."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    with _seek_lock:  # Windows has no pread: seek and read under a lock
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, len(view))
    view[:len(data)] = data
    return len(data)


def open_chunk(ring: Keyring, user_id: str, chunk_id: str, size: int, envelope: bytes) -> bytes:
    """The plaintext of chunk `chunk_id`, which the manifest says is `size` bytes.

    Checks the envelope's binding to this id, then re-hashes the plaintext:
    the id commits to the content, so even a device holding the keyring
    cannot plant other bytes under an id other files dedup against.
    """
    cid = chunk_id_bytes(chunk_id)
    data = crypto.open_sealed(ring.content, crypto.KIND_CHUNK, envelope,
                              _chunk_context(ring, user_id_bytes(user_id), cid))
    if len(data) != size or crypto.chunk_hash(ring.chunk_id, data) != cid:
        raise IntegrityError()
    return data


def encrypt_file(source: Source, ring: Keyring, user_id: str, *,
                 chunker: Chunker | None = None,
                 rand: crypto.Random = os.urandom) -> Iterator[SealedChunk]:
    """Read, chunk, hash and seal a file, one chunk at a time, in order.

    Envelopes are independent objects, so callers may upload them in
    parallel; memory stays at the chunker's buffer plus what they hold.
    """
    if chunker is None:
        size = os.stat(source).st_size if isinstance(source, str | os.PathLike) else 0
        chunker = Chunker(ring.chunker, tier_for(size))
    user_id_bytes(user_id)  # fail before reading anything
    scratch = bytearray(crypto.padded_len(chunker.max_size))
    for offset, data in chunker.split(source):
        cid, envelope = seal_chunk(ring, user_id, data, rand=rand, scratch=scratch)
        yield SealedChunk(cid, len(data), envelope, offset)


def chunk_spans(source: Source, ring: Keyring, chunker: Chunker) -> list[Span]:
    """Chunk and hash a file without encrypting anything: the first half of
    an upload, after which the server says which ids it lacks."""
    return [Span(offset, len(view), crypto.chunk_hash(ring.chunk_id, view).hex())
            for offset, view in chunker.split(source)]


def open_chunks(manifest: Manifest, ring: Keyring, user_id: str, fetch: Fetch) -> Iterator[bytes]:
    """The file's plaintext, chunk by chunk, each verified before it is yielded.

    A failure mid-file raises IntegrityError after earlier chunks were
    yielded: callers that must not keep partial output use `decrypt_file`.
    """
    if manifest.tombstone:
        raise ValueError("a tombstone has no content")
    if manifest.inline is not None:
        yield manifest.inline
        return
    for ref in manifest.chunks:
        yield open_chunk(ring, user_id, ref.id, ref.size, fetch(ref.id))


def verify_file(manifest: Manifest, ring: Keyring, user_id: str, fetch: Fetch) -> None:
    """Check every chunk of a version without writing anything."""
    for _ in open_chunks(manifest, ring, user_id, fetch):
        pass


PART_SUFFIX = ".part"
BLOCK = 4096  # holes are punched at this granularity, aligned to file offsets
_ZERO_BLOCK = bytes(BLOCK)


def part_path(dest: str | os.PathLike[str]) -> Path:
    """Where a download of `dest` keeps its plaintext until every chunk has
    verified: `dest` + ".part", beside it. The name is deterministic, so the
    next attempt at the same `dest` finds it and resumes."""
    return Path(os.fspath(dest) + PART_SUFFIX)


def verified_prefix(manifest: Manifest, ring: Keyring, fd: int) -> tuple[int, int]:
    """(chunks, bytes) at the start of an open part file that already hold
    the manifest's plaintext: every chunk up to the first one that is missing,
    short, or does not hash to the id the manifest names there.

    Chunk ids are a keyed hash of the plaintext, so this verifies the local
    bytes exactly as `open_chunk` verifies fetched ones: nothing is trusted
    because it is on disk. A part file left by another version of the file
    is a valid prefix up to its first differing chunk.
    """
    count = offset = 0
    buf = bytearray()
    for ref in manifest.chunks:
        if len(buf) < ref.size:
            buf = bytearray(ref.size)
        view = memoryview(buf)[:ref.size]
        if _read_at(fd, view, offset) != ref.size \
                or crypto.chunk_hash(ring.chunk_id, view) != chunk_id_bytes(ref.id):
            break
        count += 1
        offset += ref.size
    return count, offset


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of `data` at `offset` (one writer per part file)."""
    view = memoryview(data)
    if hasattr(os, "pwrite"):
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
        return
    os.lseek(fd, offset, os.SEEK_SET)  # Windows
    while view:
        view = view[os.write(fd, view):]


def write_sparse(fd: int, data: bytes, offset: int) -> int:
    """Write `data` at `offset`, skipping every whole 4 KiB block (aligned to
    file offsets) that is all zero: the file must already read as zeros
    there (past its end, or a hole). Returns the bytes actually written."""
    written = 0
    end = offset + len(data)
    run = offset  # the start of the bytes not written yet
    pos = min(end, -(-offset // BLOCK) * BLOCK)  # the first block boundary
    while pos + BLOCK <= end:
        if data[pos - offset:pos - offset + BLOCK] == _ZERO_BLOCK:  # memcmp: quick
            if pos > run:
                _write_at(fd, memoryview(data)[run - offset:pos - offset], run)
                written += pos - run
            run = pos + BLOCK
        pos += BLOCK
    if end > run:
        _write_at(fd, memoryview(data)[run - offset:], run)
        written += end - run
    return written


Resumed = Callable[[int, int], None]
"""Told (chunks, bytes) of a verified prefix kept from an earlier attempt,
before the first fetch: fetches start at that chunk."""


def decrypt_file(manifest: Manifest, ring: Keyring, user_id: str, fetch: Fetch,
                 dest: str | os.PathLike[str], *, on_resume: Resumed | None = None) -> None:
    """Restore a version to `dest`, all or nothing, resuming an earlier attempt.

    Plaintext goes to `part_path(dest)`, which replaces `dest` only once every
    chunk has verified; on any error `dest` is untouched and the part file is
    kept, so the next call for the same `dest` re-verifies its bytes
    (`verified_prefix`), truncates it after the verified prefix and fetches
    only the chunks after it, in order. All-zero 4 KiB blocks are not written
    (the result is sparse). mtime and permission bits come from the manifest.
    """
    if manifest.tombstone:
        raise ValueError("a tombstone has no content")
    part = part_path(dest)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0), 0o600)
    try:
        if manifest.inline is not None:
            os.ftruncate(fd, 0)
            _write_at(fd, manifest.inline, 0)
        else:
            done, offset = verified_prefix(manifest, ring, fd)
            os.ftruncate(fd, offset)  # after it, the file reads as zeros
            if on_resume is not None:
                on_resume(done, offset)
            for ref in manifest.chunks[done:]:
                data = open_chunk(ring, user_id, ref.id, ref.size, fetch(ref.id))
                write_sparse(fd, data, offset)
                offset += ref.size
            os.ftruncate(fd, manifest.size)  # a trailing hole
        os.fsync(fd)
    finally:
        os.close(fd)
    if manifest.mode & 0o777:
        os.chmod(part, manifest.mode & 0o777)
    os.utime(part, ns=(manifest.mtime_ns, manifest.mtime_ns))
    os.replace(part, dest)


def remove_stale_parts(folder: str | os.PathLike[str],
                       keep: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    """Delete the part files (`*.part`) directly in `folder`, except those of
    the destinations in `keep` (the `dest` a download was or will be called
    with, not the part path). Returns what was removed; a missing folder or a
    file that vanished meanwhile is not an error, directories are left alone.
    """
    spared = {part_path(os.path.abspath(d)) for d in keep}
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in entries:
        path = Path(os.path.abspath(entry.path))
        if not entry.name.endswith(PART_SUFFIX) or path in spared \
                or entry.is_dir(follow_symlinks=False):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed
