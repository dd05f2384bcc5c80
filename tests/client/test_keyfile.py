"""The device key file: round trip, 0600, wrong passphrase, unsafe permissions."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sealsync_client import (
    DeviceKeys,
    KdfParams,
    KeyfileError,
    WrongPassphrase,
    load_keyfile,
    open_keyfile,
    save_keyfile,
    seal_keyfile,
)

CHEAP = KdfParams(1, 8192, bytes(range(16)))
KEYS = DeviceKeys(os.urandom(32), "ab" * 16, CHEAP.encode(), {"01" * 16: os.urandom(32)})


def test_round_trip_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "keys"
    save_keyfile(path, KEYS, "pass phrase", CHEAP)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    loaded = load_keyfile(path, "pass phrase")
    assert loaded == KEYS
    assert KEYS.master.hex() not in repr(loaded)
    assert os.listdir(path.parent) == ["keys"]  # no temporary file left


def test_saving_again_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    save_keyfile(path, KEYS, "one", CHEAP)
    save_keyfile(path, KEYS, "two", KdfParams(1, 8192, bytes(16)))
    assert load_keyfile(path, "two") == KEYS
    with pytest.raises(WrongPassphrase):
        load_keyfile(path, "one")


def test_wrong_passphrase_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    save_keyfile(path, KEYS, "right", CHEAP)
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        load_keyfile(path, "wrong")


def test_a_damaged_file_does_not_open(tmp_path: Path) -> None:
    data = bytearray(seal_keyfile(KEYS, "right", CHEAP))
    data[-5] ^= 1
    with pytest.raises(WrongPassphrase):
        open_keyfile(bytes(data), "right")
    with pytest.raises(KeyfileError):
        open_keyfile(b"not a key file at all, just some text", "right")


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    save_keyfile(path, KEYS, "right", CHEAP)
    path.chmod(0o644)
    with pytest.raises(KeyfileError, match="chmod 600"):
        load_keyfile(path, "right")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyfileError, match="no key file"):
        load_keyfile(tmp_path / "absent", "x")


def test_default_parameters_are_moderate() -> None:
    """Saving without parameters uses Argon2id with libsodium's moderate cost
    and a fresh salt (checked on the header, without paying for the KDF)."""
    import struct

    from sealsync_client import keyfile

    seen: list[KdfParams] = []
    real = keyfile._wrapping_key

    def spy(passphrase: str, params: KdfParams) -> bytes:
        seen.append(params)
        return real(passphrase, KdfParams(1, 8192, params.salt))

    keyfile._wrapping_key = spy
    try:
        data = seal_keyfile(KEYS, "x")
    finally:
        keyfile._wrapping_key = real
    ops, mem, salt = struct.unpack(">IQ16s", data[2:30])
    assert (ops, mem) == (3, 256 * 1024 * 1024) == (seen[0].ops, seen[0].mem)
    assert salt == seen[0].salt != bytes(16)
