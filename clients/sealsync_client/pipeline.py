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
import tempfile
import threading
from collections.abc import Callable, Iterator
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
              out: bytearray, *, rand: crypto.Random = os.urandom) -> memoryview:
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


def decrypt_file(manifest: Manifest, ring: Keyring, user_id: str, fetch: Fetch,
                 dest: str | os.PathLike[str]) -> None:
    """Restore a version to `dest`, all or nothing.

    Plaintext goes to a temporary file beside `dest` that replaces it only
    once every chunk has verified; on any error `dest` is untouched and the
    temporary file is removed. mtime and permission bits come from the
    manifest.
    """
    folder = os.path.dirname(os.path.abspath(dest))
    fd, tmp = tempfile.mkstemp(prefix=".sealsync-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            for data in open_chunks(manifest, ring, user_id, fetch):
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if manifest.mode & 0o777:
            os.chmod(tmp, manifest.mode & 0o777)
        os.utime(tmp, ns=(manifest.mtime_ns, manifest.mtime_ns))
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise
