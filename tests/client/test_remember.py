"""The remembered key (remember.py) on keyring's own backends: keyrings.alt's
file keyring stands in for an OS keychain, keyring's fail backend for a
machine without one; and the 0600 file fallback."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring
from sealsync_client.errors import KeyfileError
from sealsync_client.keyfile import DeviceKeys
from sealsync_client.remember import (
    SERVICE,
    FileStore,
    KeychainStore,
    Remembered,
    default_store,
    store_for,
)

KEYS = DeviceKeys(bytes(range(32)), "u" * 32, "argon2id$ops=2$mem=65536$salt=00",
                  {"ab": bytes(32)})


@pytest.fixture
def keychain(tmp_path: Path) -> PlaintextKeyring:
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keychain.cfg")
    return backend


def test_the_keychain_keeps_recalls_and_forgets_the_unlocked_keys(
        keychain: PlaintextKeyring) -> None:
    slot = Remembered(KeychainStore(keychain), KEYS.user_id or "", "d" * 32)
    assert slot.recall() is None
    assert slot.keep(KEYS) is None
    assert keychain.get_password(SERVICE, f"{KEYS.user_id}/{'d' * 32}") is not None
    back = slot.recall()
    assert back is not None and back.to_json() == KEYS.to_json()  # every field round-trips
    other_device = Remembered(KeychainStore(keychain), KEYS.user_id or "", "e" * 32)
    assert other_device.recall() is None  # one entry per folder (account + device)
    assert slot.forget() and slot.recall() is None
    assert not slot.forget()


def test_keys_of_another_account_or_garbage_are_not_used(keychain: PlaintextKeyring) -> None:
    store = KeychainStore(keychain)
    moved = Remembered(store, "v" * 32, "d" * 32)
    store.put(moved.name, KEYS.to_json().decode())  # keys of account u... under v...
    assert moved.recall() is None
    store.put(moved.name, "not json")
    assert moved.recall() is None


def test_a_keychain_that_fails_means_a_prompt_not_a_crash() -> None:
    slot = Remembered(KeychainStore(fail.Keyring()), "u" * 32, "d" * 32)
    assert slot.recall() is None
    problem = slot.keep(KEYS)
    assert problem is not None and "could not remember the key" in problem


def test_the_fallback_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    where = tmp_path / "remembered"
    slot = Remembered(FileStore(where), "u" * 32, "d" * 32)
    assert slot.keep(KEYS) is None
    (path,) = where.iterdir()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert path.name == f"{'u' * 32}_{'d' * 32}"
    assert not [p for p in where.iterdir() if p.name.startswith(".remember-")]
    recalled = slot.recall()
    assert recalled is not None and recalled.master == KEYS.master
    os.chmod(path, 0o644)  # the ssh habit: refuse a key others can read
    with pytest.raises(KeyfileError, match="readable by other users"):
        slot.recall()
    assert slot.forget() and not path.exists()


def test_the_file_is_used_only_where_there_is_no_keychain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALSYNC_REMEMBER_DIR", str(tmp_path / "r"))
    assert isinstance(store_for(fail.Keyring(), chosen=False), FileStore)
    assert isinstance(store_for(fail.Keyring(), chosen=True), FileStore)
    # keyrings.alt ranks itself "not recommended": not picked by default...
    assert isinstance(store_for(PlaintextKeyring(), chosen=False), FileStore)
    # ...but used when chosen on purpose, as a test (or a user) may.
    assert isinstance(store_for(PlaintextKeyring(), chosen=True), KeychainStore)

    class Recommended(PlaintextKeyring):
        priority = 5  # what a real OS keychain backend reports

    assert isinstance(store_for(Recommended(), chosen=False), KeychainStore)


def test_default_store_follows_keyrings_own_configuration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALSYNC_REMEMBER_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    store = default_store()
    assert isinstance(store, FileStore) and store.directory == tmp_path / "r"
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    assert isinstance(default_store(), KeychainStore)
