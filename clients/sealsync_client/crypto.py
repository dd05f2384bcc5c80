"""Every cryptographic primitive the client uses, and the sealed envelope.

This is the only module that touches the cipher libraries (`cryptography`,
PyNaCl, `hashlib`'s BLAKE2b). The rest of the client should only use these
functions: `derive`, `argon2id`, `chunk_hash`, `seal`, `open_sealed`.
docs/FORMAT.md is the normative description; tests/client/vectors pins it.

Envelope v1 (every chunk, manifest, key file and pack index)::

    version u8 | kind u8 | clear fields (kind-specific) | salt[24] | commit[32]
    | AES-256-GCM(padded plaintext) | tag[16]

The whole header is associated data, followed by the caller's context (ids,
revisions), so a ciphertext opens only in the place it was sealed for.

`cryptography` is imported on first use, not with this module: opening a
folder runs Argon2id (64-256 MiB for a moment) before anything is sealed or
opened, and loading OpenSSL after it keeps the two from adding up in the
client's peak memory (docs/CLIENT.md, "Memory").
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import nacl.pwhash.argon2id
import nacl.signing

from .errors import IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({VERSION})
KIND_CHUNK: Final = b"C"
KIND_MANIFEST: Final = b"M"
KIND_KEYFILE: Final = b"K"
KIND_PACK_INDEX: Final = b"P"  # a pack's index (pack.py), under the content key
KIND_DEVICE: Final = b"D"  # a device's key file and sealed name (devices.py)
KIND_PAIRING: Final = b"R"  # the box a pairing relays (pairing.py), under the SPAKE2 key

KEY_LEN: Final = 32
SALT_LEN: Final = 24  # random per object: 192 bits, so salts never collide in practice
COMMIT_LEN: Final = 32
TAG_LEN: Final = 16
HEADER_LEN: Final = 2 + SALT_LEN + COMMIT_LEN  # plus the kind's clear fields

# Each object gets its own AES key (derived from a random salt), so the GCM
# nonce can be a constant: a (key, nonce) pair is never used twice.
_NONCE: Final = bytes(12)
_PERSON_KDF: Final = b"sealsync:kdf:v1"
_PERSON_OBJECT: Final = b"sealsync:obj:v1"
_PERSON_CHUNK_ID: Final = b"sealsync:cid:v1"

Random = Callable[[int], bytes]
"""Where salts come from: `os.urandom` unless a test pins it."""


def derive(key: bytes, purpose: bytes, context: bytes = b"", size: int = KEY_LEN) -> bytes:
    """A subkey for one purpose: BLAKE2b keyed with `key`, personalised.

    `purpose` is a versioned tag such as b"sealsync:content:v1"; it is
    length-prefixed so (purpose, context) pairs can never run together.
    Knowing a subkey reveals nothing about `key` or its other subkeys.
    """
    if not 16 <= len(key) <= 64 or not 0 < len(purpose) < 256:
        raise ValueError("derive needs a 16..64-byte key and a purpose tag")
    h = hashlib.blake2b(digest_size=size, key=key, person=_PERSON_KDF)
    h.update(bytes([len(purpose)]) + purpose)
    h.update(context)
    return h.digest()


def argon2id(passphrase: bytes, salt: bytes, ops: int, mem: int) -> bytes:
    """Stretch a passphrase into a 32-byte key (libsodium Argon2id v1.3)."""
    return nacl.pwhash.argon2id.kdf(KEY_LEN, passphrase, salt, opslimit=ops, memlimit=mem)


def chunk_hash(key: bytes, data: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte chunk id: keyed BLAKE2b-256 of the plaintext.

    Keyed per keyring, so equal chunks dedup inside one user's keyring and
    nobody without the key can test whether a user holds a known chunk.
    """
    return hashlib.blake2b(data, digest_size=32, key=key, person=_PERSON_CHUNK_ID).digest()


def signing_key(seed: bytes) -> nacl.signing.SigningKey:
    """An Ed25519 key from a 32-byte derived seed (for the signed history)."""
    return nacl.signing.SigningKey(seed)


def keystream(key: bytes, purpose: bytes, size: int) -> bytes:
    """`size` pseudorandom bytes fixed by `key` (used to key the chunker)."""
    return hashlib.shake_256(derive(key, purpose)).digest(size)


@functools.cache
def _aesgcm() -> type[AESGCM]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    return AESGCM


# -- padding ------------------------------------------------------------------
def padme(length: int) -> int:
    """The Padmé bucket for `length` (Nikitin et al., PETS 2019).

    Rounds up to a value with only its top ~log2(log2(L)) bits free: at most
    12% overhead (about 3% at 1 MiB, where buckets are 32 KiB apart), and the
    size leaks O(log log L) bits instead of O(log L).
    """
    if length < 1:
        raise ValueError("padme needs a positive length")
    exponent = length.bit_length() - 1
    free = max(exponent - exponent.bit_length(), 0)
    mask = (1 << free) - 1
    return (length + mask) & ~mask


def padded_len(length: int) -> int:
    """Length of `length` plaintext bytes after the 0x80 marker and Padmé."""
    return padme(length + 1)


def sealed_len(length: int, clear_fields: int = 0) -> int:
    """Envelope size for `length` plaintext bytes (what the server stores)."""
    return HEADER_LEN + clear_fields + padded_len(length) + TAG_LEN


def _pad_in_place(buf: bytearray, n: int) -> memoryview:
    """buf[:n] | 0x80 | zeros, written over buf's tail; the padded view."""
    total = padded_len(n)
    if len(buf) < total:
        raise ValueError("the buffer has no room for the padding")
    view = memoryview(buf)[:total]
    view[n] = 0x80
    view[n + 1:] = bytes(total - n - 1)
    return view


def _unpad(body: bytes) -> bytes:
    """Strip the padding, refusing anything but the canonical Padmé form."""
    end = body.rfind(b"\x80")
    if end < 0 or body.count(0, end + 1) != len(body) - end - 1 \
            or padded_len(end) != len(body):
        raise IntegrityError()
    return body[:end]


# -- the envelope -------------------------------------------------------------
def _object_keys(key: bytes, kind: bytes, salt: bytes) -> tuple[bytes, bytes]:
    """(AES key, key commitment) for one object.

    The commitment makes the envelope key-committing: GCM alone lets one
    ciphertext open under two chosen keys ("invisible salamanders"), which
    matters once folder keys are shared with other people.
    """
    okm = hashlib.blake2b(kind + salt, digest_size=KEY_LEN + COMMIT_LEN, key=key,
                          person=_PERSON_OBJECT).digest()
    return okm[:KEY_LEN], okm[KEY_LEN:]


def seal(key: bytes, kind: bytes, plaintext: bytes | bytearray | memoryview, context: bytes,
         *, clear: bytes = b"", rand: Random = os.urandom,
         scratch: bytearray | None = None) -> bytes:
    """Encrypt and authenticate `plaintext` for the place named by `context`.

    `clear` holds the kind's clear header fields (authenticated, not secret).
    `scratch` is an optional reusable buffer for the padded plaintext.
    """
    n = len(plaintext)
    total = padded_len(n)
    buf = scratch if scratch is not None and len(scratch) >= total else bytearray(total)
    memoryview(buf)[:n] = plaintext
    return seal_in_place(key, kind, buf, n, context, clear=clear, rand=rand)


def seal_in_place(key: bytes, kind: bytes, buf: bytearray, n: int, context: bytes,
                  *, clear: bytes = b"", rand: Random = os.urandom) -> bytes:
    """`seal` for a plaintext already in buf[:n], padded in place (buf must
    hold padded_len(n) bytes): the plaintext is never copied."""
    header, aead_key = _begin(key, kind, clear, rand)
    body = _pad_in_place(buf, n)
    return header + _aesgcm()(aead_key).encrypt(_NONCE, body, header + context)


def seal_into(key: bytes, kind: bytes, buf: bytearray, n: int, context: bytes,
              out: bytearray | memoryview, *, rand: Random = os.urandom) -> memoryview:
    """`seal_in_place` that writes the envelope into `out` (at least
    sealed_len(n) bytes) and returns the view of it that holds the envelope:
    an uploader that reuses `buf` and `out` allocates nothing per chunk
    (`out` may be a slice of a pack being filled)."""
    header, aead_key = _begin(key, kind, b"", rand)
    body = _pad_in_place(buf, n)
    end = len(header) + len(body) + TAG_LEN
    if len(out) < end:
        raise ValueError("the output buffer is too small for the envelope")
    view = memoryview(out)[:end]
    view[:len(header)] = header
    aead = _aesgcm()(aead_key)
    if hasattr(aead, "encrypt_into"):  # recent cryptography; else one copy
        aead.encrypt_into(_NONCE, body, header + context, view[len(header):])
    else:
        view[len(header):] = aead.encrypt(_NONCE, body, header + context)
    return view


def _begin(key: bytes, kind: bytes, clear: bytes, rand: Random) -> tuple[bytes, bytes]:
    """(envelope header, AEAD key) for a new object with a fresh salt."""
    if len(key) != KEY_LEN or len(kind) != 1:
        raise ValueError("seal needs a 32-byte key and a one-byte kind")
    salt = rand(SALT_LEN)
    if len(salt) != SALT_LEN:
        raise ValueError("the random source returned a short salt")
    aead_key, commit = _object_keys(key, kind, salt)
    return bytes([VERSION]) + kind + clear + salt + commit, aead_key


def clear_fields(envelope: bytes, kind: bytes, size: int) -> bytes:
    """The kind's clear header fields, read before opening (a key file's KDF
    parameters are needed to derive the key that opens it)."""
    if len(envelope) < HEADER_LEN + size + TAG_LEN or envelope[0] not in SUPPORTED_VERSIONS \
            or envelope[1:2] != kind:
        raise IntegrityError()
    return envelope[2:2 + size]


def open_sealed(key: bytes, kind: bytes, envelope: bytes, context: bytes,
                *, clear_size: int = 0) -> bytes:
    """The plaintext of an envelope sealed by `seal` for this exact context.

    Raises IntegrityError, and returns nothing, on any mismatch: version,
    kind, key commitment, tag, context (ids, revisions) or padding.
    """
    if len(key) != KEY_LEN:
        raise ValueError("open_sealed needs a 32-byte key")
    clear_fields(envelope, kind, clear_size)  # version, kind, minimum length
    start = 2 + clear_size
    salt = envelope[start:start + SALT_LEN]
    commit = envelope[start + SALT_LEN:start + SALT_LEN + COMMIT_LEN]
    aead_key, expected = _object_keys(key, kind, salt)
    if not hmac.compare_digest(commit, expected):
        raise IntegrityError()
    header_end = start + SALT_LEN + COMMIT_LEN
    view = memoryview(envelope)
    from cryptography.exceptions import InvalidTag
    try:
        body = _aesgcm()(aead_key).decrypt(_NONCE, view[header_end:],
                                           bytes(view[:header_end]) + context)
    except InvalidTag:
        raise IntegrityError() from None
    return _unpad(body)
