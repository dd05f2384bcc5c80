"""The `sealsync` command line, as a user or a script runs it (subprocesses)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
FAST = ["--kdf-ops", "2", "--kdf-mem-mib", "64"]


def sealsync(*args: str, passphrase: str = "cli passphrase", check: int | None = 0,
             secret_key: str = "") -> subprocess.CompletedProcess[str]:
    # No remembered key here: these runs check the passphrase itself
    # (test_cli_ops.py checks the remembered key).
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
           "SEALSYNC_PASSPHRASE": passphrase, "SEALSYNC_SECRET_KEY": secret_key,
           "SEALSYNC_NO_REMEMBER": "1"}
    done = subprocess.run([sys.executable, "-m", "sealsync_client", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    if check is not None:
        assert done.returncode == check, (done.stdout, done.stderr)
    return done


def as_json(*args: str, secret_key: str = "") -> Any:
    return json.loads(sealsync(*args, "--json", secret_key=secret_key).stdout)


def test_cli_two_devices_history_restore_and_errors(stack: StackProcess,
                                                    tmp_path: Path) -> None:
    api = stack.state["api"]
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    joined = as_json("init", "--server", api, "--join", account["user_id"], "--device", "two",
                     *FAST, str(two), secret_key=account["secret_key"])
    assert joined["user_id"] == account["user_id"]
    assert joined["device_id"] != account["device_id"]
    assert (one / ".sealsync" / "keys").stat().st_mode & 0o777 == 0o600

    (one / "todo.txt").write_text("milk\n")
    assert as_json("status", str(one))["new"] == ["todo.txt"]
    assert as_json("sync", str(one))["uploaded"] == ["todo.txt"]
    assert as_json("status", str(one))["new"] == []
    assert as_json("sync", str(two))["downloaded"] == ["todo.txt"]
    (two / "todo.txt").write_text("milk\neggs\n")
    assert "1 uploaded" in sealsync("sync", str(two)).stdout
    assert as_json("sync", str(one))["downloaded"] == ["todo.txt"]
    assert (one / "todo.txt").read_text() == "milk\neggs\n"

    revs = as_json("history", str(one), "todo.txt")["revisions"]
    assert [(r["revision"], r["device"], r["size"]) for r in revs] == [
        (2, "two", 10), (1, "one", 5)]
    restored = as_json("restore", str(one), "todo.txt", "--revision", "1")
    assert restored["uploaded"] == ["todo.txt"]
    assert as_json("sync", str(two))["downloaded"] == ["todo.txt"]
    assert (two / "todo.txt").read_text() == "milk\n"

    # Devices shown the same history print the same fingerprint.
    as_json("sync", str(one))
    seen = [as_json("status", str(d))["history"] for d in (one, two)]
    assert seen[0] == seen[1] and seen[0]["seq"] == 3 and len(seen[0]["fingerprint"]) == 64
    (two / "todo.txt").write_text("bread\n")
    as_json("sync", str(two))  # its own change is verified on its next pull
    assert as_json("sync", str(one))["downloaded"] == ["todo.txt"]
    ahead = as_json("status", str(one))["history"]
    assert ahead["seq"] == 4 and ahead["fingerprint"] != seen[0]["fingerprint"]
    as_json("sync", str(two))
    assert as_json("status", str(two))["history"] == ahead
    assert f"verified to change 4, fingerprint {ahead['fingerprint'][:16]}" in sealsync(
        "status", str(two)).stdout

    # Clear messages and exit codes for what goes wrong.
    bad = sealsync("sync", str(one), passphrase="not it", check=2)
    assert "wrong passphrase" in bad.stderr and "Traceback" not in bad.stderr
    down = sealsync("init", "--server", "http://127.0.0.1:9", *FAST, str(tmp_path / "x"),
                    check=3)
    assert "cannot reach the Sealsync server at http://127.0.0.1:9" in down.stderr
    wrong = sealsync("init", "--server", api, "--join", account["user_id"], *FAST,
                     str(tmp_path / "y"), passphrase="guess", check=2,
                     secret_key=account["secret_key"])
    assert "wrong passphrase or Secret Key for account" in wrong.stderr
    assert not (tmp_path / "y" / ".sealsync").exists()  # nothing half-made is left
    missing = sealsync("sync", str(tmp_path), check=2)
    assert "is not a Sealsync folder" in missing.stderr
    unknown = sealsync("history", str(one), "nope.txt", check=2)
    assert "not a synced file" in unknown.stderr


def test_watch_picks_up_a_remote_change_at_once_and_stops_cleanly(
        stack: StackProcess, tmp_path: Path) -> None:
    api = stack.state["api"]
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    as_json("init", "--server", api, "--join", account["user_id"], *FAST, str(two),
            secret_key=account["secret_key"])
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
           "SEALSYNC_PASSPHRASE": "cli passphrase"}
    watcher = subprocess.Popen([sys.executable, "-m", "sealsync_client", "watch", "--interval",
                                "15", str(two)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # let it finish its first pass and start long-polling
        (one / "hello.txt").write_text("from one\n")
        sealsync("sync", str(one))
        t0 = time.monotonic()
        while not (two / "hello.txt").exists() and time.monotonic() - t0 < 10:
            time.sleep(0.1)
        # Well inside the 15 s interval: the feed's long poll woke the watcher.
        assert (two / "hello.txt").read_text() == "from one\n"
        assert time.monotonic() - t0 < 10
        (two / "reply.txt").write_text("from two\n")  # seen on the next pass
        t0 = time.monotonic()
        while time.monotonic() - t0 < 25:
            if sealsync("sync", "--json", str(one)).stdout.count("reply.txt"):
                break
            time.sleep(0.5)
        assert (one / "reply.txt").read_text() == "from two\n"
    finally:
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err
    assert "1 downloaded" in out


def test_key_show_and_pairing_by_code(stack: StackProcess, tmp_path: Path) -> None:
    """`key show` prints the kit; `key pair` on one device and `init --pair`
    on another join the account without typing the Secret Key."""
    api = stack.state["api"]
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    kit = sealsync("key", "show", str(one)).stdout
    assert account["secret_key"] in kit and account["user_id"] in kit and "\u2588" in kit
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
           "SEALSYNC_PASSPHRASE": "cli passphrase"}
    offer = subprocess.Popen([sys.executable, "-m", "sealsync_client", "key", "pair", str(one)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert offer.stderr is not None
        line = ""
        while "--pair" not in line:
            line = offer.stderr.readline()
            assert line, "key pair ended without showing a code"
        code = line.split("--pair ", 1)[1].split()[0]
        joined = as_json("init", "--server", api, "--pair", code, "--device", "two", *FAST,
                         str(two))
        assert joined["user_id"] == account["user_id"]
        assert offer.wait(30) == 0
    finally:
        offer.kill()
        offer.wait()
    assert as_json("key", "show", str(two))["secret_key"] == account["secret_key"]
    reused = sealsync("init", "--server", api, "--pair", code, *FAST, str(tmp_path / "x"),
                      check=4)
    assert "make a new one" in reused.stderr and "Traceback" not in reused.stderr
