"""The device key file: the master key at rest, sealed by a passphrase.

A key-file envelope is an ordinary envelope of kind "K" whose clear fields
carry its own Argon2id parameters and salt (ops u32 | mem u64 | salt[16]),
so it opens with nothing but the passphrase. The payload is JSON, which
leaves room for folder keys of password-protected and shared folders.

The file is written 0600 through a temporary file and an atomic rename, and
refused on load when other users can read it (the ssh habit).
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import Final

from . import crypto
from .errors import IntegrityError, KeyfileError, WrongPassphrase
from .keys import KdfLimits, KdfParams

KEYFILE_PURPOSE: Final = b"sealsync:keyfile:v1"
_CLEAR = struct.Struct(">IQ16s")
_CONTEXT: Final = b"sealsync device key file"


@dataclass(frozen=True, repr=False)
class DeviceKeys:
    """What a device keeps: the master key, the account it belongs to and,
    for a two-secret (kdf v2) account, the Secret Key (`sealsync key show`)."""

    master: bytes
    user_id: str | None = None
    kdf: str | None = None  # the account's kdf string, for re-deriving on a new device
    folder_keys: dict[str, bytes] = field(default_factory=dict)  # keyring id hex -> key
    secret_key: bytes | None = None

    def __repr__(self) -> str:
        return f"DeviceKeys(user_id={self.user_id!r}, <secret>)"

    def to_json(self) -> bytes:
        """Payload v1 without a Secret Key (byte-identical to older files), v2 with one."""
        obj: dict[str, object] = {
            "v": 1, "master": self.master.hex(), "user_id": self.user_id, "kdf": self.kdf,
            "folder_keys": {k: v.hex() for k, v in self.folder_keys.items()}}
        if self.secret_key is not None:
            obj.update(v=2, secret_key=self.secret_key.hex())
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> DeviceKeys:
        try:
            obj = json.loads(data)
            if obj["v"] not in (1, 2):
                raise KeyfileError("this key file was written by a newer Sealsync")
            master = bytes.fromhex(obj["master"])
            folders = {str(k): bytes.fromhex(v) for k, v in obj["folder_keys"].items()}
            secret = bytes.fromhex(obj["secret_key"]) if obj["v"] == 2 else None
            if len(master) != crypto.KEY_LEN or (secret is not None and len(secret) != 16):
                raise ValueError("bad key length")
            return cls(master, obj["user_id"], obj["kdf"], folders, secret)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyfileError("the key file's contents are malformed") from exc


def _wrapping_key(passphrase: str, params: KdfParams) -> bytes:
    return crypto.derive(params.stretch(passphrase), KEYFILE_PURPOSE)


def seal_keyfile(keys: DeviceKeys, passphrase: str, params: KdfParams | None = None,
                 rand: crypto.Random = os.urandom) -> bytes:
    """The key file's bytes. A fresh salt each time unless `params` pins one."""
    params = params or KdfParams.new(rand=rand)
    clear = _CLEAR.pack(params.ops, params.mem, params.salt)
    return crypto.seal(_wrapping_key(passphrase, params), crypto.KIND_KEYFILE, keys.to_json(),
                       _CONTEXT, clear=clear, rand=rand)


def open_keyfile(data: bytes, passphrase: str, limits: KdfLimits | None = None) -> DeviceKeys:
    """The keys in a key file; WrongPassphrase if the passphrase does not open it."""
    try:
        ops, mem, salt = _CLEAR.unpack(crypto.clear_fields(data, crypto.KIND_KEYFILE,
                                                           _CLEAR.size))
    except IntegrityError:
        raise KeyfileError("not a Sealsync key file (or an unsupported version)") from None
    params = KdfParams(ops, mem, salt)
    params.check(limits or KdfLimits(min_ops=1, min_mem=8192))  # bound the cost only
    try:
        plaintext = crypto.open_sealed(_wrapping_key(passphrase, params), crypto.KIND_KEYFILE,
                                       data, _CONTEXT, clear_size=_CLEAR.size)
    except IntegrityError:
        raise WrongPassphrase() from None
    return DeviceKeys.from_json(plaintext)


def save_keyfile(path: str | os.PathLike[str], keys: DeviceKeys, passphrase: str,
                 params: KdfParams | None = None) -> None:
    """Write the key file atomically with mode 0600 (directory 0700 if new)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    data = seal_keyfile(keys, passphrase, params)
    fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=folder)  # mkstemp creates it 0600
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load_keyfile(path: str | os.PathLike[str], passphrase: str,
                 limits: KdfLimits | None = None) -> DeviceKeys:
    """Read and open a key file, refusing one that others can read."""
    try:
        with open(path, "rb") as f:
            if os.name == "posix" and os.fstat(f.fileno()).st_mode & 0o077:
                raise KeyfileError(f"{os.fspath(path)} is readable by other users; "
                                   f"run: chmod 600 {os.fspath(path)}")
            data = f.read(1024 * 1024)
    except FileNotFoundError:
        raise KeyfileError(f"no key file at {os.fspath(path)}") from None
    return open_keyfile(data, passphrase, limits)
