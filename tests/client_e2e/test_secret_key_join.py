"""Joining with passphrase + Secret Key against the real stack: the KDF
floor on join (a hostile server's cheap parameters and kdf v1 downgrades
are refused before anything is derived or sent), and `key migrate`."""
from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest
from sealsync_client.api import Api
from sealsync_client.devices import DeviceKey
from sealsync_client.errors import KdfError, WrongPassphrase
from sealsync_client.folder import Cost, init_folder, open_folder
from sealsync_client.keyfile import DeviceKeys, save_keyfile
from sealsync_client.keys import AccountKeys, KdfParams
from sealsync_client.migrate import LEGACY_DIR, migrate_folder
from sealsync_client.secret_key import SecretKey
from sealsync_client.state import Config, keyfile_path

from tests.client_e2e.conftest import FAST, PASSPHRASE, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def test_join_with_the_secret_key_and_refuse_without_the_right_one(
        stack: StackProcess, tmp_path: Path) -> None:
    api = stack.state["api"]
    a = init_folder(tmp_path / "a", api, PASSPHRASE, device_name="a", cost=FAST)
    assert a.secret_key is not None
    with pytest.raises(WrongPassphrase, match="wrong passphrase or Secret Key"):
        init_folder(tmp_path / "b", api, PASSPHRASE, join_user_id=a.config.user_id, cost=FAST,
                    secret_key=SecretKey.new())
    assert not (tmp_path / "b" / ".sealsync").exists()
    b = init_folder(tmp_path / "b", api, PASSPHRASE, join_user_id=a.config.user_id, cost=FAST,
                    secret_key=a.secret_key.text())
    try:
        (a.root / "x.txt").write_text("hello")
        settle(a, b)
        assert tree(b) == {"x.txt": b"hello"}
        assert b.secret_key == a.secret_key  # `key show` works on every device
    finally:
        a.close()
        b.close()


def _account(api_url: str, params: KdfParams, keys: AccountKeys) -> str:
    api = Api(api_url)
    try:
        return api.create_account(keys.auth_key(), params.encode())
    finally:
        api.http.close()


def test_join_refuses_parameters_below_this_clients_signup_cost(stack: StackProcess,
                                                                tmp_path: Path) -> None:
    """A hostile server hands out the floor every client accepts (ops=2,
    64 MiB) for an account; a client whose sign-up default is higher refuses."""
    sk = SecretKey.new()
    cheap = KdfParams.new(ops=2, mem=64 * 2**20)
    user = _account(stack.state["api"], cheap,
                    AccountKeys.from_passphrase(PASSPHRASE, cheap, sk.raw))
    with pytest.raises(KdfError, match="outside the accepted range"):
        init_folder(tmp_path / "j", stack.state["api"], PASSPHRASE, join_user_id=user,
                    secret_key=sk, cost=Cost())  # the sign-up default: ops=3, 256 MiB


def test_join_refuses_a_kdf_v1_downgrade(stack: StackProcess, tmp_path: Path) -> None:
    """Served a passphrase-only (v1) kdf string, a joining device would send a
    passphrase-only auth_key: a guessing oracle. It refuses instead."""
    v1 = KdfParams.new(ops=2, mem=64 * 2**20, version=1)
    user = _account(stack.state["api"], v1, AccountKeys.from_passphrase(PASSPHRASE, v1))
    with pytest.raises(KdfError, match="made before Secret Keys"):
        init_folder(tmp_path / "j", stack.state["api"], PASSPHRASE, join_user_id=user,
                    secret_key=SecretKey.new(), cost=FAST)


def make_v1_folder(root: Path, api_url: str) -> str:
    """A folder set up as a client before Secret Keys did it."""
    params = KdfParams.new(ops=2, mem=64 * 2**20, version=1)
    keys = AccountKeys.from_passphrase(PASSPHRASE, params)
    api = Api(api_url)
    try:
        user = api.create_account(keys.auth_key(), params.encode())
        # enrolled with a key, whose file is then not kept: opening the folder
        # also walks the migration from before device keys (folder._migrate)
        key = DeviceKey.new(user, secrets.token_hex(16))
        device = api.add_device(user, keys.auth_key(),
                                key.enrolment(keys.signing_key()))["device_id"]
    finally:
        api.http.close()
    root.mkdir()
    save_keyfile(keyfile_path(root), DeviceKeys(keys.master, user, params.encode()),
                 PASSPHRASE, FAST.params())
    Config(api_url, user, device, socket.gethostname()).save(root)
    return user


def test_migrate_moves_a_v1_folder_to_a_two_secret_account(stack: StackProcess,
                                                          tmp_path: Path) -> None:
    api = stack.state["api"]
    old_user = make_v1_folder(tmp_path / "old", api)
    (tmp_path / "old" / "a.txt").write_text("first")
    (tmp_path / "old" / "sub").mkdir()
    (tmp_path / "old" / "sub" / "b.bin").write_bytes(b"\x00" * 70_000)
    old = open_folder(tmp_path / "old", PASSPHRASE)
    assert old.secret_key is None and not old.engine().sync().errors
    old.close()

    done = migrate_folder(tmp_path / "old", PASSPHRASE, PASSPHRASE, FAST)
    new = done.folder
    try:
        assert done.old_user_id == old_user and new.config.user_id != old_user
        assert new.secret_key is not None and not done.upload.errors
        assert sorted(done.upload.uploaded) == ["a.txt", "sub/b.bin"]
        assert (new.root / ".sealsync" / LEGACY_DIR / "keys").exists()
        with pytest.raises(KdfError, match="already uses a Secret Key"):
            migrate_folder(new.root, PASSPHRASE, PASSPHRASE, FAST)
        joined = init_folder(tmp_path / "new", api, PASSPHRASE,
                             join_user_id=new.config.user_id, cost=FAST,
                             secret_key=new.secret_key)
        try:
            settle(new, joined)
            assert tree(joined) == tree(new) == {"a.txt": b"first",
                                                 "sub/b.bin": b"\x00" * 70_000}
        finally:
            joined.close()
    finally:
        new.close()
