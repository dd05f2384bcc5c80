"""This device's own Ed25519 key, and what it signs for the server
(docs/FORMAT.md section 13; the server's side is chalicelib/core/signatures.py,
which this module must match byte for byte: the vectors pin both).

Why a key per device: the account key (keys.py) signs the history other
devices verify, but the server cannot tell a device from a token thief by
it. Each device therefore registers its own public key at enrolment,
vouched for by the account key, and signs every version it uploads; the
server refuses anything else. Revoking a device (`sealsync devices revoke`)
needs the account key too, so a leaked token cannot lock anyone out.

The seed lives in `.sealsync/device.key`, sealed under a key derived from
the master key (so the passphrase guards it like everything else), bound to
the account and device ids. Device names are sealed the same way before the
server sees them.
"""
from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from . import crypto
from .errors import IntegrityError, KeyfileError

if TYPE_CHECKING:
    import nacl.signing

ENTRY_TAG: Final = b"sealsync-entry-v1\x00"
DEVICE_TAG: Final = b"sealsync-device-v1\x00"
REVOKE_TAG: Final = b"sealsync-revoke-v1\x00"
SIG_LEN: Final = 64
DEVICE_KEY_FILE: Final = b"sealsync:device-key:v1"
DEVICE_NAME: Final = b"sealsync:device-name:v1"
MAX_NAME_BYTES: Final = 100  # sealed, this stays under the server's 256-byte bound
_ENTRY: Final = struct.Struct(">16s16sQBQ32s32s")


# -- the messages (FORMAT.md section 13) --------------------------------------------
def entry_message(user_id: str, file_id: str, base: int, tombstone: bool,
                  manifest: bytes | memoryview, chunk_ids: Sequence[str]) -> bytes:
    """What a device signs for one batch entry: the sealed manifest's
    SHA-256 (never plaintext), and what the entry declares to the server."""
    chunks = hashlib.sha256(b"".join(bytes.fromhex(c) for c in chunk_ids)).digest()
    return ENTRY_TAG + _ENTRY.pack(bytes.fromhex(user_id), bytes.fromhex(file_id), base,
                                   1 if tombstone else 0, len(manifest),
                                   hashlib.sha256(manifest).digest(), chunks)


def device_message(user_id: str, device_id: str, device_key: bytes) -> bytes:
    """What the account key signs to vouch for a device at enrolment."""
    return DEVICE_TAG + bytes.fromhex(user_id) + bytes.fromhex(device_id) + device_key


def revoke_message(user_id: str, device_id: str) -> bytes:
    """What the account key signs to revoke a device."""
    return REVOKE_TAG + bytes.fromhex(user_id) + bytes.fromhex(device_id)


def _context(what: bytes, user_id: str, device_id: str) -> bytes:
    return what + bytes.fromhex(user_id) + bytes.fromhex(device_id)


# -- this device's key ------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class DeviceKey:
    """A device's Ed25519 key, with the ids it is registered under."""

    user_id: str
    device_id: str
    seed: bytes

    @classmethod
    def new(cls, user_id: str, device_id: str, rand: crypto.Random = os.urandom) -> DeviceKey:
        return cls(user_id, device_id, rand(32))

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return crypto.signing_key(self.seed)

    @property
    def public(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    def enrolment(self, account_key: nacl.signing.SigningKey) -> dict[str, str]:
        """The fields of POST /v1/devices that register this key."""
        vouch = account_key.sign(device_message(self.user_id, self.device_id, self.public))
        return {"device_id": self.device_id, "device_key": self.public.hex(),
                "device_sig": bytes(vouch.signature).hex(),
                "signing_key": bytes(account_key.verify_key).hex()}

    def sign_entry(self, file_id: str, base: int, tombstone: bool,
                   manifest: bytes | memoryview, chunk_ids: Sequence[str]) -> bytes:
        message = entry_message(self.user_id, file_id, base, tombstone, manifest, chunk_ids)
        return bytes(self.signing_key.sign(message).signature)

    def __repr__(self) -> str:  # never print key material (invariant 6)
        return f"DeviceKey(device_id={self.device_id!r}, <secret>)"


def save_device_key(path: Path, master: bytes, key: DeviceKey) -> None:
    """Write the sealed seed atomically, 0600."""
    sealed = crypto.seal(crypto.derive(master, DEVICE_KEY_FILE), crypto.KIND_DEVICE,
                         key.seed, _context(DEVICE_KEY_FILE, key.user_id, key.device_id))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(sealed)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def load_device_key(path: Path, master: bytes, user_id: str,
                    device_id: str) -> DeviceKey | None:
    """This device's key; None for a folder from before device keys."""
    try:
        sealed = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        seed = crypto.open_sealed(crypto.derive(master, DEVICE_KEY_FILE), crypto.KIND_DEVICE,
                                  sealed, _context(DEVICE_KEY_FILE, user_id, device_id))
    except IntegrityError:
        raise KeyfileError(f"{path} does not belong to this account and device") from None
    return DeviceKey(user_id, device_id, seed)


# -- device names -------------------------------------------------------------------
def seal_name(master: bytes, user_id: str, device_id: str, name: str) -> str:
    """A device's display name as the server keeps it: sealed, hex."""
    data = name.encode()[:MAX_NAME_BYTES]
    return crypto.seal(crypto.derive(master, DEVICE_NAME), crypto.KIND_DEVICE, data,
                       _context(DEVICE_NAME, user_id, device_id)).hex()


def open_name(master: bytes, user_id: str, device_id: str, sealed_hex: str) -> str | None:
    """The name another device of the account sealed; None if none or bad."""
    try:
        sealed = bytes.fromhex(sealed_hex)
        data = crypto.open_sealed(crypto.derive(master, DEVICE_NAME), crypto.KIND_DEVICE,
                                  sealed, _context(DEVICE_NAME, user_id, device_id))
    except (ValueError, IntegrityError):
        return None
    return data.decode(errors="replace")
