"""The remembered key: a folder's unlocked keys, kept so that `sync`,
`watch` and `status` need neither the passphrase nor another Argon2id run.

Where it is kept:

- the OS keychain, through the `keyring` package (macOS Keychain, Windows
  Credential Locker, the Secret Service on Linux desktops), under the
  service "sealsync" and the account "USER_ID/DEVICE_ID";
- only where keyring finds no keychain at all (a server, a container, a
  Linux box without a Secret Service), a file of its own:
  $SEALSYNC_REMEMBER_DIR, else $XDG_DATA_HOME/sealsync/remembered (default
  ~/.local/share/sealsync/remembered), one file per folder, mode 0600 in a
  0700 directory, refused when others can read it. It is outside the synced
  folder on purpose, so that copying the folder never copies the key.

Whether to look at all: a folder whose key was never kept (made by
`init_folder` without `sealsync init`'s keep, or after `sealsync forget`)
carries the mark `.sealsync/key-not-remembered`, and opening it skips the
lookup. That lookup is not free: keyring's backend discovery imports every
backend (on Linux the Secret Service one pulls in `secretstorage` and
`cryptography`), about 11 MiB that would otherwise be resident while the
passphrase's Argon2id takes its 64-256 MiB, and the two peaks add up
(docs/CLIENT.md, "Memory"). With the mark, the keychain is loaded only after
the Argon2id has run and freed its memory, to keep the key. A folder
without the mark (every folder made before it existed) is looked up as
before, so no kept key is ever missed; a wrong mark costs one passphrase
prompt, never a key.

What is kept is exactly what unlocking the key file yields (`DeviceKeys`),
so how that key is derived can change without touching this module. The
remembered key is as strong as the login session's protection (the
keychain) or the user account's file permissions (the fallback): that is
the trade `--no-remember` declines.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import KeyfileError
from .keyfile import DeviceKeys

SERVICE = "sealsync"
DIR_ENV = "SEALSYNC_REMEMBER_DIR"
NOT_KEPT_MARK = "key-not-remembered"  # in the folder's meta dir (.sealsync/)


def mark_not_kept(meta: Path) -> None:
    """Record that no key of this folder is kept: the next open skips the lookup."""
    (meta / NOT_KEPT_MARK).touch(mode=0o600)


def may_be_kept(meta: Path) -> bool:
    """Whether a kept key is worth looking up (no mark says it cannot be)."""
    return not (meta / NOT_KEPT_MARK).exists()


def clear_not_kept(meta: Path) -> None:
    (meta / NOT_KEPT_MARK).unlink(missing_ok=True)


class KeyStore(Protocol):
    """Where remembered keys live; `name` is USER_ID/DEVICE_ID."""

    where: str

    def get(self, name: str) -> str | None: ...
    def put(self, name: str, secret: str) -> None: ...
    def delete(self, name: str) -> bool: ...


class KeychainStore:
    """A keyring backend (the OS keychain, or one a test picks)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.where = f"the keychain ({type(backend).__module__}.{type(backend).__name__})"

    def get(self, name: str) -> str | None:
        value = self.backend.get_password(SERVICE, name)
        return None if value is None else str(value)

    def put(self, name: str, secret: str) -> None:
        self.backend.set_password(SERVICE, name, secret)

    def delete(self, name: str) -> bool:
        from keyring.errors import PasswordDeleteError

        try:
            self.backend.delete_password(SERVICE, name)
        except PasswordDeleteError:
            return False
        return True


class FileStore:
    """The fallback: one 0600 file per folder in a 0700 directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.where = f"{directory} (no keychain here: a 0600 file)"

    def _path(self, name: str) -> Path:
        return self.directory / name.replace("/", "_")

    def get(self, name: str) -> str | None:
        path = self._path(name)
        try:
            with open(path, "rb") as f:
                if os.name == "posix" and os.fstat(f.fileno()).st_mode & 0o077:
                    raise KeyfileError(f"{path} is readable by other users; run: "
                                       f"chmod 600 {path} (or sealsync forget)")
                return f.read(64 * 1024).decode()
        except FileNotFoundError:
            return None

    def put(self, name: str, secret: str) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".remember-", dir=self.directory)  # 0600
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secret.encode())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self._path(name))
        except BaseException:
            os.unlink(tmp)
            raise

    def delete(self, name: str) -> bool:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            return False
        return True


def fallback_dir() -> Path:
    if os.environ.get(DIR_ENV):
        return Path(os.environ[DIR_ENV])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "sealsync" / "remembered"


def default_store() -> KeyStore:
    """The keychain keyring chose (or was told to use), else the file."""
    import keyring

    chosen = keyring.core.load_env() or keyring.core.load_config()
    return store_for(chosen or keyring.get_keyring(), chosen=chosen is not None)


def store_for(backend: Any, chosen: bool) -> KeyStore:
    """keyring's fail backend means there is no keychain. A backend keyring
    ranks below 1 ("not recommended": keyrings.alt's plain files, the null
    backend) is used only when chosen on purpose ($PYTHON_KEYRING_BACKEND or
    keyring's config file); otherwise the documented file is."""
    from keyring.backends import fail

    if isinstance(backend, fail.Keyring) or (not chosen
                                             and getattr(backend, "priority", 0) < 1):
        return FileStore(fallback_dir())
    return KeychainStore(backend)


@dataclass(frozen=True)
class Remembered:
    """The remembered key of one folder (one device of one account)."""

    store: KeyStore
    user_id: str
    device_id: str

    @property
    def name(self) -> str:
        return f"{self.user_id}/{self.device_id}"

    def recall(self) -> DeviceKeys | None:
        """The keys, or None when none are kept (or they are not this folder's)."""
        from keyring.errors import KeyringError

        try:
            secret = self.store.get(self.name)
        except KeyringError:
            return None  # a locked or unreachable keychain: ask for the passphrase
        if secret is None:
            return None
        try:
            keys = DeviceKeys.from_json(secret.encode())
        except KeyfileError:
            return None
        return keys if keys.user_id == self.user_id else None

    def keep(self, keys: DeviceKeys) -> str | None:
        """Remember `keys`; None on success, else why it could not be done."""
        from keyring.errors import KeyringError

        try:
            self.store.put(self.name, keys.to_json().decode())
        except (KeyringError, OSError) as exc:
            return f"could not remember the key in {self.store.where}: {exc}"
        return None

    def forget(self) -> bool:
        """Remove the kept key; whether there was one."""
        return self.store.delete(self.name)
