"""The whole-sync progress display, as a person sees it (the CLI in a
pseudo-terminal) and as a GUI reads it (JSON lines under --json)."""
from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.client_e2e.test_cli import FAST, as_json
from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
BIG = 12 * 1024 * 1024  # above progress.BAR_MIN_BYTES: its transfer gets a bar of its own
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """Run `sealsync ARGS` with stderr on a pseudo-terminal; (exit code,
    stdout, what the terminal showed, escape codes removed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
           "SEALSYNC_PASSPHRASE": "cli passphrase", "SEALSYNC_NO_REMEMBER": "1",
           "COLUMNS": "160", "TERM": "xterm"}
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sealsync_client", *args], env=env,
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    screen = bytearray()
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        screen += data
    os.close(master)
    out = proc.stdout.read() if proc.stdout else ""
    proc.wait(timeout=120)
    return proc.returncode, out, ANSI.sub("\n", screen.decode("utf-8", "replace"))


def test_a_pass_shows_files_bytes_rate_and_eta_on_a_terminal_and_as_json_lines(
        stack: StackProcess, tmp_path: Path) -> None:
    api = stack.state["api"]
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", api, "--device", "one", *FAST, str(one))
    as_json("init", "--server", api, "--join", account["user_id"], *FAST, str(two),
            secret_key=account["secret_key"])
    for i in range(40):
        (one / f"f{i:02}.txt").write_text(f"file {i}\n" * 50)
    (one / "big.bin").write_bytes(os.urandom(BIG))

    code, out, screen = on_a_terminal("sync", str(one))
    assert code == 0, screen
    assert "41 uploaded" in out
    assert "41/41 files" in screen  # the whole pass, at its end
    assert re.search(r"12\.\d/12\.\d MB", screen), screen  # bytes done of total
    assert re.search(r"\d+(\.\d+)? [kM]?B/s ETA \d:\d\d:\d\d", screen), screen  # rate, ETA
    # The big transfer's own bar, while it went: the file's, or (packs) its
    # batch's packs'.
    assert re.search(r"up   (big\.bin|\d+ pack\(s\))", screen), screen
    assert "Traceback" not in screen

    done = subprocess.run([sys.executable, "-m", "sealsync_client", "sync", "--json",
                           str(two)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO / "clients"),
                               "SEALSYNC_PASSPHRASE": "cli passphrase",
                               "SEALSYNC_NO_REMEMBER": "1"})
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["downloaded"]) == 41  # stdout: one JSON document
    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert events and all(e["event"] == "progress" for e in events)
    last = events[-1]
    assert last["files_done"] == last["files_total"] == 41
    assert last["bytes_done"] == last["bytes_total"] == BIG + sum(
        len(f"file {i}\n" * 50) for i in range(40))
    assert last["eta_seconds"] == 0.0 and last["bytes_per_second"] > 0
    assert {"elapsed_seconds", "eta_seconds", "bytes_per_second"} <= set(last)
