"""Sealsync client: the encryption format and chunking (docs/FORMAT.md).

The sync engine, HTTP client and CLI should only use what is exported here.
Everything the server receives from these functions is ciphertext, padded
sizes or opaque ids; every failure to verify what it sends back raises the
single `IntegrityError`.

    params = KdfParams.new()                                  # new account
    keys = AccountKeys.from_passphrase(passphrase, params)
    # POST /v1/accounts {"auth_key": keys.auth_key(), "kdf": params.encode()}
    ring = keys.root_keyring()
    chunks = list(encrypt_file(path, ring, user_id))          # PUT each envelope
    manifest = Manifest(name, size, mtime_ns, mode, device,
                        tuple(ChunkRef(c.id, c.size) for c in chunks))
    place = ManifestPlace.for_upload(user_id, file_id, base)
    signed = history.sign(place, manifest)   # link + Ed25519 signature (FORMAT.md §9)
    envelope = seal_manifest(ring, place, signed)
"""
from __future__ import annotations

from .chunking import Chunker
from .crypto import sealed_len
from .errors import (
    IntegrityError,
    KdfError,
    KeyfileError,
    SealsyncClientError,
    WrongPassphrase,
)
from .keyfile import DeviceKeys, load_keyfile, open_keyfile, save_keyfile, seal_keyfile
from .keys import ROOT_KEYRING_ID, AccountKeys, KdfLimits, KdfParams, Keyring
from .manifest import (
    INLINE_MAX,
    ChunkRef,
    Manifest,
    ManifestPlace,
    open_manifest,
    seal_manifest,
)
from .pipeline import (
    SealedChunk,
    decrypt_file,
    encrypt_file,
    open_chunk,
    open_chunks,
    seal_chunk,
    verify_file,
)
from .wire import new_file_id

__all__ = [
    "INLINE_MAX", "ROOT_KEYRING_ID", "AccountKeys", "ChunkRef", "Chunker", "DeviceKeys",
    "IntegrityError", "KdfError", "KdfLimits", "KdfParams", "KeyfileError", "Keyring",
    "Manifest", "ManifestPlace", "SealedChunk", "SealsyncClientError", "WrongPassphrase",
    "decrypt_file", "encrypt_file", "load_keyfile", "new_file_id", "open_chunk",
    "open_chunks", "open_keyfile", "open_manifest", "save_keyfile", "seal_chunk",
    "seal_keyfile", "seal_manifest", "sealed_len", "verify_file",
]
