"""Manifests: everything about one file version that is not chunk bytes.

The name, path, exact size, mtime, mode, device name and the ordered chunk
list live only here, encrypted under the keyring's manifest key and bound to
(user, keyring, file id, revision, base revision). The server sees the
envelope's padded length and nothing else (invariant 6); a manifest it
replays under another revision or file does not open (invariant 8).

Plaintext v2, big-endian, canonical (one encoding per manifest)::

    version u8 = 2 | flags u8 (1 tombstone, 2 inline) | size u64 | mtime_ns i64
    | mode u32 | path_len u16 | path bytes | device_len u8 | device utf-8
    | inline:  content[size]
    | chunked: count u32 | count x (chunk id[32] | plaintext size u32)
    | link: prev[32] | device id[16] | counter u64 | feed seq u64 | feed hash[32]
    | signature[64]

The link and the Ed25519 signature are the signed, hash-chained history
(history.py, docs/FORMAT.md section 9); this module only encodes them.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

from . import crypto
from .errors import IntegrityError
from .keys import Keyring
from .names import from_bytes, to_bytes
from .wire import file_id_bytes, user_id_bytes

MANIFEST_VERSION: Final = 2  # 2: the signed history link (v1 had none; never deployed)
INLINE_MAX: Final = 16 * 1024  # files up to this size ride inside the manifest
INLINE_READ_MAX: Final = 64 * 1024  # readers accept more, so writers may raise INLINE_MAX
MAX_CHUNKS: Final = 4096  # the server's cap on chunks per version
MAX_CHUNK_SIZE: Final = 16 * 1024 * 1024
MAX_PATH_BYTES: Final = 4096
MAX_DEVICE_BYTES: Final = 255

_TOMBSTONE: Final = 1
_INLINE: Final = 2
_HEAD = struct.Struct(">BBQqIH")
_REF = struct.Struct(">32sI")
_COUNT = struct.Struct(">I")
_CONTEXT = struct.Struct(">16s16s16sQQ")
_LINK = struct.Struct(">32s16sQQ32s")
SIGNATURE_LEN: Final = 64
HASH_LEN: Final = 32
_SIGNED: Final = b"sealsync:history:v1"  # domain of the manifest signature


@dataclass(frozen=True)
class ChunkRef:
    """One chunk of a file, in file order: its id and plaintext size."""

    id: str  # 64 lowercase hex, as on the wire
    size: int


@dataclass(frozen=True)
class Link:
    """A version's place in the account's history, signed with the manifest.

    `prev` chains the file's versions (the version hash of the base revision,
    zeros for a new file). `device_id` and `counter` name the signing device
    and its own sequence number. `feed_seq` and `feed_hash` are the change
    feed position this device had verified when it sealed, and that prefix's
    hash: the cross-device link that exposes a forked history (history.py).
    """

    prev: bytes
    device_id: str
    counter: int
    feed_seq: int
    feed_hash: bytes

    def encode(self) -> bytes:
        return _LINK.pack(self.prev, bytes.fromhex(self.device_id), self.counter,
                          self.feed_seq, self.feed_hash)

    def __post_init__(self) -> None:
        if len(self.prev) != HASH_LEN or len(self.feed_hash) != HASH_LEN \
                or not 0 < self.counter < 2**64 or not 0 <= self.feed_seq < 2**64 \
                or len(self.device_id) != 32 or self.device_id != self.device_id.lower():
            raise ValueError("a history link has 32-byte hashes, a 32-hex device id, "
                             "a counter from 1 and a u64 feed seq")
        bytes.fromhex(self.device_id)


@dataclass(frozen=True)
class Manifest:
    """One version of one file, as only its owner's devices can read it."""

    path: str
    size: int
    mtime_ns: int
    mode: int
    device: str
    chunks: tuple[ChunkRef, ...] = ()
    inline: bytes | None = None
    tombstone: bool = False
    link: Link | None = None  # set by History.sign; required to encode
    signature: bytes = b""

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def deleted(cls, path: str, mtime_ns: int, device: str) -> Manifest:
        """A tombstone: the file was deleted in this revision."""
        return cls(path, 0, mtime_ns, 0, device, tombstone=True)

    def encode(self) -> bytes:
        """The plaintext: the signed body, then the signature."""
        if len(self.signature) != SIGNATURE_LEN:
            raise ValueError("an unsigned manifest cannot be encoded: History.sign it first")
        return self.body() + self.signature

    def body(self) -> bytes:
        """Everything the signature covers (with the place, see signed_message)."""
        if self.link is None:
            raise ValueError("a manifest needs its history link: History.sign it first")
        path, device = to_bytes(self.path), self.device.encode()
        flags = (_TOMBSTONE if self.tombstone else 0) | (_INLINE if self.inline is not None else 0)
        parts = [_HEAD.pack(MANIFEST_VERSION, flags, self.size, self.mtime_ns, self.mode,
                            len(path)), path, bytes([len(device)]), device]
        if self.inline is not None:
            parts.append(self.inline)
        elif not self.tombstone:
            parts.append(_COUNT.pack(len(self.chunks)))
            parts.extend(_REF.pack(bytes.fromhex(c.id), c.size) for c in self.chunks)
        parts.append(self.link.encode())
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """Parse a decrypted manifest; any deviation is an IntegrityError."""
        try:
            return _decode(data)
        except (ValueError, struct.error, UnicodeDecodeError, IndexError):
            raise IntegrityError() from None


def _check(m: Manifest) -> None:
    """The invariants every manifest holds, checked on build and on decode."""
    path, device = to_bytes(m.path), m.device.encode()  # a lone surrogate: ValueError
    if not 0 < len(path) <= MAX_PATH_BYTES or "\x00" in m.path:
        raise ValueError(f"a path is 1..{MAX_PATH_BYTES} bytes without NUL")
    if len(m.signature) not in (0, SIGNATURE_LEN) or (m.signature and m.link is None):
        raise ValueError("a signature is 64 bytes and comes with a link")
    if len(device) > MAX_DEVICE_BYTES:
        raise ValueError(f"device name must be at most {MAX_DEVICE_BYTES} UTF-8 bytes")
    if not 0 <= m.mode < 2**32 or not -2**63 <= m.mtime_ns < 2**63 or not 0 <= m.size < 2**64:
        raise ValueError("mode, mtime_ns or size out of range")
    if m.tombstone:
        if m.size or m.chunks or m.inline is not None:
            raise ValueError("a tombstone has no content")
    elif m.inline is not None:
        if m.chunks or len(m.inline) != m.size or m.size > INLINE_READ_MAX:
            raise ValueError("inline content must match size and stay small")
    else:
        if len(m.chunks) > MAX_CHUNKS or sum(c.size for c in m.chunks) != m.size:
            raise ValueError("chunk sizes must add up to size (at most 4096 chunks)")
        for c in m.chunks:
            if len(c.id) != 64 or c.id != c.id.lower() or not 0 < c.size <= MAX_CHUNK_SIZE:
                raise ValueError("a chunk ref is 64 lowercase hex and 1..16 MiB")
            bytes.fromhex(c.id)


def _decode(data: bytes) -> Manifest:
    version, flags, size, mtime, mode, path_len = _HEAD.unpack_from(data, 0)
    if version != MANIFEST_VERSION or flags & ~(_TOMBSTONE | _INLINE) \
            or flags == _TOMBSTONE | _INLINE:
        raise ValueError("unknown manifest version or flags")
    at = _HEAD.size
    path = from_bytes(data[at:at + path_len])  # names.py: not always UTF-8
    at += path_len
    device_len = data[at]
    device = data[at + 1:at + 1 + device_len].decode()
    at += 1 + device_len
    inline: bytes | None = None
    refs: list[ChunkRef] = []
    if flags & _INLINE:
        inline = data[at:at + size]
        at += size
    elif not flags & _TOMBSTONE:
        (count,) = _COUNT.unpack_from(data, at)
        if count > MAX_CHUNKS:
            raise ValueError("too many chunks")
        at += _COUNT.size
        for _ in range(count):
            raw_id, chunk_size = _REF.unpack_from(data, at)
            refs.append(ChunkRef(raw_id.hex(), chunk_size))
            at += _REF.size
    prev, device_id, counter, feed_seq, feed_hash = _LINK.unpack_from(data, at)
    at += _LINK.size
    signature = data[at:at + SIGNATURE_LEN]
    at += SIGNATURE_LEN
    if at != len(data) or len(to_bytes(path)) != path_len:
        raise ValueError("trailing or missing bytes")
    link = Link(prev, device_id.hex(), counter, feed_seq, feed_hash)
    return Manifest(path, size, mtime, mode, device, tuple(refs), inline,
                    bool(flags & _TOMBSTONE), link, signature)


# -- sealing --------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestPlace:
    """Where a manifest belongs: it opens only here (its associated data)."""

    user_id: str
    file_id: str
    revision: int
    base_revision: int

    @classmethod
    def for_upload(cls, user_id: str, file_id: str, base_revision: int) -> ManifestPlace:
        """An accepted upload becomes revision base + 1 (the server's rule)."""
        return cls(user_id, file_id, base_revision + 1, base_revision)

    @classmethod
    def for_download(cls, user_id: str, file_id: str, revision: int) -> ManifestPlace:
        return cls(user_id, file_id, revision, revision - 1)

    def context(self, ring: Keyring) -> bytes:
        if not 0 <= self.base_revision < self.revision < 2**63:
            raise ValueError("revision must be above base_revision (both non-negative)")
        return _CONTEXT.pack(ring.keyring_id, user_id_bytes(self.user_id),
                             file_id_bytes(self.file_id), self.revision, self.base_revision)


def signed_message(ring: Keyring, place: ManifestPlace, manifest: Manifest) -> bytes:
    """What the account's Ed25519 key signs: a domain tag, the place
    (keyring, user, file, revision, base) and the body with its link."""
    return _SIGNED + place.context(ring) + manifest.body()


def seal_manifest(ring: Keyring, place: ManifestPlace, manifest: Manifest,
                  rand: crypto.Random = os.urandom) -> bytes:
    """The manifest envelope to PUT at the upload's manifest_url (the
    manifest must be signed: History.sign)."""
    return crypto.seal(ring.manifest, crypto.KIND_MANIFEST, manifest.encode(),
                       place.context(ring), rand=rand)


def open_manifest(ring: Keyring, place: ManifestPlace, envelope: bytes) -> Manifest:
    """The manifest, if `envelope` was sealed by this keyring for exactly this
    place; IntegrityError otherwise (tampered, replayed, moved, wrong key)."""
    plaintext = crypto.open_sealed(ring.manifest, crypto.KIND_MANIFEST, envelope,
                                   place.context(ring))
    return Manifest.decode(plaintext)
