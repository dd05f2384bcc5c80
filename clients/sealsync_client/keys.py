"""The key hierarchy: passphrase + Secret Key -> master key -> purpose subkeys.

    passphrase --Argon2id(kdf string)--> stretched
    stretched --"sealsync:master:v2", Secret Key--> master   (two-secret, kdf v2)
      master --"sealsync:auth:v2"--------> auth_key    (sent to the server)
      master --"sealsync:signing:v1"-----> Ed25519 seed (signs the history: history.py)
      master --"sealsync:folder-root:v1"-> root folder key   (keyring id 0)
        folder key --"sealsync:content:v1"--> content key  (chunk envelopes)
                   --"sealsync:chunk-id:v1"-> chunk-id key (keyed BLAKE2b ids)
                   --"sealsync:chunker:v1"--> chunker key  (CDC seed + permutation)
                   --"sealsync:manifest:v1"-> manifest key (names and metadata)

Every arrow is one-way (BLAKE2b), so the auth key the server holds derives
nothing else. The 128-bit Secret Key (secret_key.py) is made on the first
device and never leaves the user's devices, so nothing the server holds,
not even a live auth_key, can be attacked by guessing passphrases
(docs/SECURITY.md). Accounts made before it (kdf v1) derive the master
from the passphrase alone; `sealsync key migrate` moves them.

A *keyring* is one folder key and its subkeys: today every
file uses the root keyring; password-protected and shared folders will get
random folder keys with their own ids, wrapped and stored (docs/FORMAT.md).
"""
from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from . import crypto
from .errors import KdfError

if TYPE_CHECKING:
    import nacl.signing

AUTH: Final = b"sealsync:auth:v1"  # kdf v1 accounts (passphrase only)
AUTH_V2: Final = b"sealsync:auth:v2"
MASTER_V2: Final = b"sealsync:master:v2"
SIGNING: Final = b"sealsync:signing:v1"
FOLDER_ROOT: Final = b"sealsync:folder-root:v1"
CONTENT: Final = b"sealsync:content:v1"
CHUNK_ID: Final = b"sealsync:chunk-id:v1"
CHUNKER: Final = b"sealsync:chunker:v1"
MANIFEST: Final = b"sealsync:manifest:v1"

KEYRING_ID_LEN: Final = 16
ROOT_KEYRING_ID: Final = bytes(KEYRING_ID_LEN)
SALT_LEN: Final = 16
SECRET_KEY_LEN: Final = 16

KDF_PREFIX: Final = "sealsync-kdf-v1:argon2id"  # passphrase alone (before the Secret Key)
KDF_PREFIX_V2: Final = "sealsync-kdf-v2:argon2id"  # passphrase + Secret Key
_KDF = re.compile(r"sealsync-kdf-v([12]):argon2id:ops=([1-9][0-9]{0,2}):mem=([1-9][0-9]{3,12})"
                  rf":salt=([0-9a-f]{{{2 * SALT_LEN}}})")


@dataclass(frozen=True)
class KdfLimits:
    """The Argon2id parameters a client accepts: at least the floor, at most
    the ceiling (a hostile server could ask for terabytes of memory)."""

    min_ops: int = 2
    min_mem: int = 64 * 1024 * 1024
    max_ops: int = 64
    max_mem: int = 4 * 1024 * 1024 * 1024


SAFE_LIMITS: Final = KdfLimits()
DEFAULT_OPS: Final = 3  # libsodium's "moderate": ~0.5-1 s on a laptop core
DEFAULT_MEM: Final = 256 * 1024 * 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters and salt: the public `kdf` string the server keeps.

    `version` 2 means the master key also needs the Secret Key; 1 is an
    account made before it, whose master is the passphrase alone."""

    ops: int
    mem: int
    salt: bytes
    version: int = 2

    @classmethod
    def new(cls, ops: int = DEFAULT_OPS, mem: int = DEFAULT_MEM,
            rand: crypto.Random = os.urandom, version: int = 2) -> KdfParams:
        """Fresh parameters with a random salt, for a new account."""
        return cls(ops, mem, rand(SALT_LEN), version)

    def encode(self) -> str:
        prefix = KDF_PREFIX_V2 if self.version == 2 else KDF_PREFIX
        return f"{prefix}:ops={self.ops}:mem={self.mem}:salt={self.salt.hex()}"

    @classmethod
    def parse(cls, text: object, limits: KdfLimits = SAFE_LIMITS) -> KdfParams:
        """Parse a `kdf` string, refusing weak or absurd parameters."""
        match = _KDF.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise KdfError("not a Sealsync kdf string (sealsync-kdf-v2:argon2id:...)")
        params = cls(int(match[2]), int(match[3]), bytes.fromhex(match[4]), int(match[1]))
        params.check(limits)
        return params

    def check(self, limits: KdfLimits = SAFE_LIMITS) -> None:
        if not limits.min_ops <= self.ops <= limits.max_ops \
                or not limits.min_mem <= self.mem <= limits.max_mem:
            raise KdfError(f"Argon2id parameters ops={self.ops} mem={self.mem} are outside "
                           f"the accepted range: refusing to derive keys with them")
        if len(self.salt) != SALT_LEN:
            raise KdfError(f"the Argon2id salt must be {SALT_LEN} bytes")

    def stretch(self, passphrase: str) -> bytes:
        """The 32-byte key this passphrase gives under these parameters.

        The passphrase is NFC-normalised so the same words typed on another
        keyboard or OS give the same key.
        """
        if not passphrase:
            raise ValueError("the passphrase must not be empty")
        data = unicodedata.normalize("NFC", passphrase).encode()
        return crypto.argon2id(data, self.salt, self.ops, self.mem)


def _check_id(keyring_id: bytes) -> bytes:
    if len(keyring_id) != KEYRING_ID_LEN:
        raise ValueError(f"a keyring id is {KEYRING_ID_LEN} bytes")
    return keyring_id


@dataclass(frozen=True, repr=False, eq=False)
class Keyring:
    """The keys for one folder (one keyring): what seals its files.

    Chunk ids and chunk boundaries are per keyring, so dedup never crosses
    keyrings: sharing a folder reveals nothing about the others.
    """

    keyring_id: bytes
    content: bytes
    chunk_id: bytes
    chunker: bytes
    manifest: bytes

    @classmethod
    def from_folder_key(cls, folder_key: bytes, keyring_id: bytes) -> Keyring:
        """Derive a keyring; the id is mixed in, so one key under two ids
        still gives unrelated subkeys."""
        kid = _check_id(keyring_id)
        if len(folder_key) != crypto.KEY_LEN:
            raise ValueError("a folder key is 32 bytes")
        return cls(kid, *(crypto.derive(folder_key, p, kid)
                          for p in (CONTENT, CHUNK_ID, CHUNKER, MANIFEST)))

    def chunk_id_of(self, data: bytes | bytearray | memoryview) -> str:
        """The wire chunk id (64 lowercase hex) of a plaintext chunk."""
        return crypto.chunk_hash(self.chunk_id, data).hex()

    def __repr__(self) -> str:  # never print key material (invariant 6)
        return f"Keyring(id={self.keyring_id.hex()})"


@dataclass(frozen=True, repr=False, eq=False)
class AccountKeys:
    """The master key and what derives from it."""

    master: bytes
    version: int = 2  # the kdf version: 2 = passphrase + Secret Key

    def __post_init__(self) -> None:
        if len(self.master) != crypto.KEY_LEN:
            raise ValueError("the master key is 32 bytes")

    @classmethod
    def from_passphrase(cls, passphrase: str, params: KdfParams,
                        secret_key: bytes | None = None) -> AccountKeys:
        """The account's keys. A v2 account needs its 16-byte Secret Key:
        the master is BLAKE2b keyed by the stretched passphrase over the
        Secret Key, so either secret alone gives nothing."""
        stretched = params.stretch(passphrase)
        if params.version == 1:
            return cls(stretched, 1)
        if secret_key is None or len(secret_key) != SECRET_KEY_LEN:
            raise KdfError("this account needs its Secret Key (16 bytes) as well as the "
                           "passphrase")
        return cls(crypto.derive(stretched, MASTER_V2, secret_key), 2)

    def auth_key(self) -> str:
        """The server-auth secret (64 lowercase hex), for POST /v1/accounts
        and device login. One-way from the master: it unlocks nothing."""
        return crypto.derive(self.master, AUTH_V2 if self.version == 2 else AUTH).hex()

    def signing_key(self) -> nacl.signing.SigningKey:
        """The account's Ed25519 key: it signs every manifest's history link (history.py)."""
        return crypto.signing_key(crypto.derive(self.master, SIGNING))

    def root_folder_key(self) -> bytes:
        return crypto.derive(self.master, FOLDER_ROOT)

    def root_keyring(self) -> Keyring:
        """The default keyring: every file outside protected/shared folders."""
        return Keyring.from_folder_key(self.root_folder_key(), ROOT_KEYRING_ID)

    def __repr__(self) -> str:
        return "AccountKeys(<secret>)"
