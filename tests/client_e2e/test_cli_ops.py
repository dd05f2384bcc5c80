"""The remembered key and --bwlimit through the real CLI (subprocesses)
against the local stack. Keys are remembered in keyring's own backends:
keyring's fail backend (no keychain: the 0600 file), or keyrings.alt's
file keyring standing in for an OS keychain."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from keyrings.alt.file import PlaintextKeyring

from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
FAST = ["--kdf-ops", "2", "--kdf-mem-mib", "64"]
PASSPHRASE = "ops passphrase"


class Cli:
    """`sealsync` in a subprocess, with its own keychain and remember dir."""

    def __init__(self, tmp: Path, backend: str = "keyring.backends.fail.Keyring") -> None:
        self.remembered = tmp / "remembered"
        self.env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
                    "PYTHON_KEYRING_BACKEND": backend,
                    "SEALSYNC_REMEMBER_DIR": str(self.remembered),
                    "XDG_DATA_HOME": str(tmp / "xdg-data")}  # keyrings.alt's file lives here
        self.env.pop("SEALSYNC_PASSPHRASE", None)
        self.env.pop("SEALSYNC_NO_REMEMBER", None)

    def __call__(self, *args: str, passphrase: str | None = PASSPHRASE, check: int | None = 0,
                 **env: str) -> subprocess.CompletedProcess[str]:
        run_env = {**self.env, **env}
        if passphrase is not None:
            run_env["SEALSYNC_PASSPHRASE"] = passphrase
        done = subprocess.run([sys.executable, "-m", "sealsync_client", *args], env=run_env,
                              capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if check is not None:
            assert done.returncode == check, (done.stdout, done.stderr)
        return done

    def files(self) -> list[Path]:
        return sorted(self.remembered.iterdir()) if self.remembered.exists() else []


def test_the_key_is_remembered_after_the_first_unlock_and_forgotten_on_request(
        stack: StackProcess, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    api = stack.state["api"]
    one = tmp_path / "one"
    cli("init", "--server", api, "--device", "one", *FAST, str(one))
    (kept,) = cli.files()  # no keychain here: the documented file, 0600
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.remembered.stat().st_mode) == 0o700
    assert not (one / ".sealsync" / kept.name).exists()  # never inside the synced folder

    (one / "a.txt").write_text("a\n")
    # No passphrase at all (and stdin closed: a prompt would abort): the kept key opens it.
    assert "1 uploaded" in cli("sync", str(one), passphrase=None).stdout
    assert "synced file" in cli("status", str(one), passphrase=None).stdout
    # The passphrase is not even read: a wrong one changes nothing.
    cli("sync", str(one), passphrase="wrong")

    assert "forgot the key" in cli("forget", str(one)).stdout
    assert cli.files() == []
    bad = cli("sync", str(one), passphrase="wrong", check=2)
    assert "wrong passphrase" in bad.stderr and "Traceback" not in bad.stderr
    assert "no remembered key" in cli("forget", str(one)).stdout
    cli("sync", str(one))  # the right passphrase, once: remembered again
    assert len(cli.files()) == 1


def test_no_remember_never_stores_the_key(stack: StackProcess, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    one = tmp_path / "one"
    cli("init", "--server", stack.state["api"], "--no-remember", *FAST, str(one))
    cli("sync", "--no-remember", str(one))
    cli("status", "--no-remember", str(one))
    cli("sync", str(one), SEALSYNC_NO_REMEMBER="1")
    assert cli.files() == []
    cli("sync", str(one), passphrase="wrong", check=2)  # so every run needs the passphrase


def test_a_keychain_backend_is_used_when_there_is_one(stack: StackProcess,
                                                      tmp_path: Path) -> None:
    cli = Cli(tmp_path, backend="keyrings.alt.file.PlaintextKeyring")
    one = tmp_path / "one"
    cli("init", "--server", stack.state["api"], *FAST, str(one))
    assert cli.files() == []  # not the fallback file: the keychain
    config = _json((one / ".sealsync" / "config.json").read_text())
    (stored,) = (tmp_path / "xdg-data").rglob("keyring_pass.cfg")
    keychain = PlaintextKeyring()
    keychain.file_path = str(stored)
    name = f"{config['user_id']}/{config['device_id']}"
    assert keychain.get_password("sealsync", name) is not None
    cli("sync", str(one), passphrase=None)
    cli("forget", str(one))
    assert keychain.get_password("sealsync", name) is None
    cli("sync", str(one), passphrase="wrong", check=2)


def test_bwlimit_on_sync_and_its_errors(stack: StackProcess, tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    made = cli("init", "--server", stack.state["api"], "--json", *FAST, str(one))
    user_id = _json(made.stdout)["user_id"]
    cli("init", "--server", stack.state["api"], "--join", user_id, *FAST, str(two),
        SEALSYNC_SECRET_KEY=_json(made.stdout)["secret_key"])
    data = os.urandom(3 * 1024 * 1024)
    (one / "big.bin").write_bytes(data)
    t0 = time.monotonic()
    cli("sync", "--bwlimit", "1M", str(one))
    # ~3 MiB of sealed chunks through a 1 MiB/s bucket (less its 256 KiB burst):
    # the figure is checked loosely here; the rate itself by tests/client/test_bwlimit.py.
    assert time.monotonic() - t0 > 2.0
    cli("sync", "--bwlimit", "off:1M", str(two))
    assert (two / "big.bin").read_bytes() == data
    bad = cli("sync", "--bwlimit", "fast", str(one), check=2)
    assert "is not a rate" in bad.stderr and "Traceback" not in bad.stderr


def _json(text: str) -> Any:
    import json

    return json.loads(text)


RECORDING = "tests.client_e2e.recording_keyring.RecordingKeyring"


def test_a_folder_whose_key_was_never_kept_skips_the_keychain_lookup(
        stack: StackProcess, tmp_path: Path) -> None:
    """remember.py's mark: a folder made without keeping its key (the library's
    init_folder, or after `forget`) opens with the passphrase without asking
    the keychain first (its discovery would be resident during the Argon2id),
    keeps the key, and is looked up as usual from then on."""
    from sealsync_client.folder import Cost, init_folder
    from sealsync_client.remember import NOT_KEPT_MARK

    cli = Cli(tmp_path, backend=RECORDING)
    log = tmp_path / "keychain.log"
    cli.env.update({"PYTHONPATH": f"{REPO / 'clients'}{os.pathsep}{REPO}",
                    "RECORDING_KEYRING_LOG": str(log)})
    made = init_folder(tmp_path / "one", stack.state["api"], "a strong passphrase for ops",
                       device_name="one", cost=Cost(ops=2, mem=64 * 2**20))
    one, mark = made.root, made.root / ".sealsync" / NOT_KEPT_MARK
    made.close()
    assert mark.exists()

    cli("sync", str(one), passphrase="a strong passphrase for ops")
    assert log.read_text().split() == ["set"]  # never looked up: kept after the unlock
    assert not mark.exists()
    cli("sync", str(one), passphrase=None)  # the kept key opens it, looked up first
    assert log.read_text().split() == ["set", "get"]

    cli("forget", str(one))
    assert mark.exists()
    cli("sync", "--no-remember", str(one), passphrase="a strong passphrase for ops")
    assert log.read_text().split() == ["set", "get", "delete"]  # no lookup, nothing kept
    assert mark.exists()
    cli("sync", str(one), passphrase="wrong", check=2)


def test_a_wrong_mark_costs_a_prompt_never_the_key(stack: StackProcess,
                                                   tmp_path: Path) -> None:
    """A mark left beside a kept key (a restored .sealsync/, say): the
    passphrase opens the folder, the key is kept again and the mark goes."""
    from sealsync_client.remember import NOT_KEPT_MARK

    cli = Cli(tmp_path)
    one = tmp_path / "one"
    cli("init", "--server", stack.state["api"], *FAST, str(one))
    mark = one / ".sealsync" / NOT_KEPT_MARK
    assert not mark.exists() and len(cli.files()) == 1  # `init` kept the key
    mark.touch()
    cli("sync", str(one), passphrase=None, check=2)  # not looked up: asks, stdin closed
    cli("sync", str(one))
    assert not mark.exists() and len(cli.files()) == 1
    cli("sync", str(one), passphrase=None)
