"""Device signatures the server checks (docs/FORMAT.md section 13). Pure.

Threat: a leaked bearer token. Before this, a token alone could commit any
bytes, or a bare delete, that every device then refused forever. Now each
device holds an Ed25519 key, registered at enrolment and vouched for by the
account's signing key, and signs every version it uploads; the commit
handler checks each batch entry (a v1 upload is a batch of one) against the key of
the device that presigned it, before the fence. A token without the device
key commits nothing. Nothing here needs plaintext: an entry's signature
covers the SHA-256 of the *sealed* manifest bytes the server stores anyway.

Three messages, each with its own tag, fixed-length fields, big-endian:

  entry   "sealsync-entry-v1\\0" user(16) file(16) base(u64) flags(u8)
          manifest_size(u64) sha256(sealed manifest)(32) sha256(chunk ids)(32)
  device  "sealsync-device-v1\\0" user(16) device(16) device_key(32)
  revoke  "sealsync-revoke-v1\\0" user(16) device(16)

`flags` bit 0 is the server-tombstone flag; the chunk digest is SHA-256 of
the chunk ids (32 bytes each) in the order the entry lists them. The
account key signs `device` (enrolment) and `revoke`; a device key signs
`entry`. The client's own signed history (FORMAT.md section 9) stays the
second line: it also catches a server that lies, which this cannot.

PyNaCl (libsodium) verifies; it is imported on the first verification, so
`import app` (every cold start) never pays for it.
"""
from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from .decide import Decision, Reject, Skip
from .errors import BadRequest

ENTRY_TAG: Final = b"sealsync-entry-v1\x00"
DEVICE_TAG: Final = b"sealsync-device-v1\x00"
REVOKE_TAG: Final = b"sealsync-revoke-v1\x00"
KEY_LEN: Final = 32
SIG_LEN: Final = 64
_ENTRY = struct.Struct(">16s16sQBQ32s32s")
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_HEX_SIG = re.compile(r"[0-9a-f]{128}")


@dataclass(frozen=True)
class Signed:
    """What an entry's signature covers, as the server's own record has it."""

    file_id: str
    base_revision: int
    tombstone: bool
    manifest_size: int
    chunk_ids: tuple[str, ...]


@dataclass(frozen=True)
class Device:
    """A device as the store keeps it: its key, its sealed name, whether revoked."""

    device_id: str
    public_key: bytes | None  # None: enrolled before device keys (cannot write)
    revoked_at: int | None = None
    created: int = 0
    name: bytes = b""  # sealed by the client (the server never sees a device name)

    @property
    def can_write(self) -> bool:
        return self.public_key is not None and self.revoked_at is None


# -- parsing what clients send -----------------------------------------------------
def parse_key(value: object, what: str) -> bytes:
    """An Ed25519 public key: 64 lowercase hex digits."""
    if not isinstance(value, str) or not _HEX_KEY.fullmatch(value):
        raise BadRequest(f"{what} must be an Ed25519 public key as 64 lowercase hex digits")
    return bytes.fromhex(value)


def parse_sig(value: object, what: str) -> bytes:
    """An Ed25519 signature: 128 lowercase hex digits."""
    if not isinstance(value, str) or not _HEX_SIG.fullmatch(value):
        raise BadRequest(f"{what} must be an Ed25519 signature as 128 lowercase hex digits")
    return bytes.fromhex(value)


# -- the messages ----------------------------------------------------------------------
def chunks_digest(chunk_ids: Sequence[str]) -> bytes:
    return hashlib.sha256(b"".join(bytes.fromhex(c) for c in chunk_ids)).digest()


def entry_message(user_id: str, e: Signed, manifest_sha256: bytes) -> bytes:
    return ENTRY_TAG + _ENTRY.pack(bytes.fromhex(user_id), bytes.fromhex(e.file_id),
                                   e.base_revision, 1 if e.tombstone else 0,
                                   e.manifest_size, manifest_sha256,
                                   chunks_digest(e.chunk_ids))


def device_message(user_id: str, device_id: str, device_key: bytes) -> bytes:
    return DEVICE_TAG + bytes.fromhex(user_id) + bytes.fromhex(device_id) + device_key


def revoke_message(user_id: str, device_id: str) -> bytes:
    return REVOKE_TAG + bytes.fromhex(user_id) + bytes.fromhex(device_id)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff `signature` is `public_key`'s Ed25519 signature of `message`."""
    import nacl.exceptions
    import nacl.signing

    if len(public_key) != KEY_LEN or len(signature) != SIG_LEN:
        return False
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError):
        return False
    return True


# -- the commit's check ---------------------------------------------------------------
def read_bundle(stream: Iterable[bytes], sizes: Sequence[int],
                trailer: int = 0) -> tuple[list[bytes], bytes]:
    """SHA-256 of each consecutive slice of `stream` (`sizes[i]` bytes each),
    hashed as the bytes go by (a 64 MiB bundle is never held whole), and the
    next `trailer` bytes as they are (a batch's signatures)."""
    digests: list[bytes] = []
    tail = bytearray()
    want = iter(sizes)
    current, left = hashlib.sha256(), next(want, None)
    while left == 0:
        digests.append(current.digest())
        current, left = hashlib.sha256(), next(want, None)
    for block in stream:
        view = memoryview(block)
        while view and left is not None:
            take = min(left, len(view))
            current.update(view[:take])
            view, left = view[take:], left - take
            while left == 0:
                digests.append(current.digest())
                current, left = hashlib.sha256(), next(want, None)
        if view and len(tail) < trailer:
            tail += view[:trailer - len(tail)]
    return digests, bytes(tail)


def trailer_signatures(tail: bytes, count: int) -> list[bytes | None]:
    """A batch bundle ends with one 64-byte signature per entry, in entry
    order; a short trailer leaves the entries it does not reach unsigned."""
    return [tail[i * SIG_LEN:(i + 1) * SIG_LEN] if len(tail) >= (i + 1) * SIG_LEN else None
            for i in range(count)]


def entry_problems(user_id: str, device: Device | None, entries: Sequence[Signed],
                   signatures: Sequence[bytes | None], digests: Sequence[bytes],
                   only: Iterable[int]) -> dict[int, str]:
    """The reason each entry in `only` must be rejected, if any: no writing
    device, no signature, or one that does not verify for these bytes.
    `digests[i]` is the SHA-256 of entry i's sealed manifest as stored."""
    out: dict[int, str] = {}
    for i in only:
        if device is None or device.public_key is None:
            out[i] = "the uploading device has no registered key: enrol it again"
        elif device.revoked_at is not None:
            out[i] = "the uploading device was revoked"
        elif i >= len(signatures) or signatures[i] is None:
            out[i] = "unsigned: every version must be signed by a registered device key"
        elif i >= len(digests) or not verify(
                device.public_key, entry_message(user_id, entries[i], digests[i]),
                signatures[i] or b""):
            out[i] = "bad signature: not signed by the uploading device for these bytes"
    return out


def overridden(decisions: Mapping[int, Decision],
               problems: Mapping[int, str]) -> dict[int, Decision]:
    """`decisions` with each entry that has a signature problem rejected for
    it (before the fence, so it is never written); an entry an earlier run
    already committed stays skipped."""
    out = dict(decisions)
    for i, why in problems.items():
        if i in out and not isinstance(out[i], Skip):
            out[i] = Reject(why)
    return out
