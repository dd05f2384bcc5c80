"""A local stack that keeps its data (local/persist.py), and a client that
understands a server that lost or rolled back its data.

Each test starts and stops real stacks (`python -m local.stack`) on one
fixed API port, so a folder's config keeps pointing at "the server" across
restarts, and drives the real CLI in subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from local.services import free_port
from tests.e2e.conftest import REPO, StackProcess, pid_alive

pytestmark = pytest.mark.e2e
FAST = ["--kdf-ops", "2", "--kdf-mem-mib", "64"]


def sealsync(*args: str, check: int | None = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "clients"),
           "SEALSYNC_PASSPHRASE": "forgot passphrase"}
    done = subprocess.run([sys.executable, "-m", "sealsync_client", *args], env=env,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if check is not None:
        assert done.returncode == check, (done.stdout, done.stderr)
    return done


def as_json(*args: str) -> Any:
    return json.loads(sealsync(*args, "--json").stdout)


class Server:
    """One API port; stacks started and stopped on it in turn."""

    def __init__(self, tmp: Path, data: Path | None) -> None:
        self.tmp, self.data, self.port = tmp, data, free_port()
        self.runs = 0
        self.sp: StackProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StackProcess:
        self.runs += 1
        work = self.tmp / f"run{self.runs}"
        work.mkdir()
        keep = ["--data-dir", str(self.data), "--snapshot-interval", "3600"] if self.data \
            else []
        self.sp = StackProcess(work, "--api-port", str(self.port), *keep)
        self.sp.wait_ready()
        return self.sp

    def stop(self) -> None:
        assert self.sp is not None
        assert self.sp.stop() == 0, self.sp.stderr()[-3000:]

    def stderr(self) -> str:
        assert self.sp is not None
        return self.sp.stderr()


@pytest.fixture
def server(tmp_path: Path) -> Any:
    s = Server(tmp_path, tmp_path / "data")
    yield s
    if s.sp is not None:
        s.sp.kill()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and ".sealsync" not in p.relative_to(root).parts}


def test_committed_data_survives_a_stop_and_a_kill_9_of_the_stack(
        server: Server, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    server.start()
    account = as_json("init", "--server", server.url, "--device", "one", *FAST, str(one))
    (one / "notes.txt").write_text("kept\n")
    (one / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # real chunks, not inline
    as_json("sync", str(one))
    server.stop()
    assert (server.data / "snapshot.json").exists()  # type: ignore[operator]

    server.start()
    assert "restored" in server.stderr()
    as_json("init", "--server", server.url, "--join", account["user_id"], "--device", "two",
            *FAST, str(two))
    assert sorted(as_json("sync", str(two))["downloaded"]) == ["big.bin", "notes.txt"]
    assert tree(two) == tree(one)

    (one / "later.txt").write_text("after the restart\n")
    as_json("sync", str(one))
    # kill -9 the stack itself: its moto process sees it gone and keeps what was committed.
    sp = server.sp
    assert sp is not None
    moto_port = int(sp.state["aws_endpoint"].rsplit(":", 1)[1])
    os.kill(sp.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while _serving(moto_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _serving(moto_port)
    sp.kill()  # and whatever else of that run is left (its redis-server)
    assert not pid_alive(sp.proc.pid)

    server.start()  # the kill left its owner file: a dead pid does not block a restart
    assert as_json("sync", str(two))["downloaded"] == ["later.txt"]
    assert tree(two) == tree(one)
    server.stop()


def test_a_rolled_back_server_is_named_and_nothing_is_deleted_then_reseed(
        server: Server, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    server.start()
    account = as_json("init", "--server", server.url, "--device", "one", *FAST, str(one))
    as_json("init", "--server", server.url, "--join", account["user_id"], "--device", "two",
            *FAST, str(two))
    (one / "a.txt").write_text("a\n")
    as_json("sync", str(one))
    server.stop()
    backup = tmp_path / "backup"
    shutil.copytree(server.data, backup)  # type: ignore[arg-type]

    server.start()
    (one / "b.txt").write_text("b\n")
    as_json("sync", str(one))
    as_json("sync", str(two))
    assert sorted(tree(two)) == ["a.txt", "b.txt"]
    server.stop()
    shutil.rmtree(server.data)  # type: ignore[arg-type]
    shutil.copytree(backup, server.data)  # type: ignore[arg-type]  # an old backup restored

    server.start()
    refused = sealsync("sync", str(two), check=4)
    assert "the server lost or rolled back its data" in refused.stderr
    assert "not a remote delete" in refused.stderr
    assert f"sealsync init --reseed {two}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert sorted(tree(two)) == ["a.txt", "b.txt"]  # nothing deleted, nothing changed

    reseeded = as_json("init", "--reseed", *FAST, str(two))
    assert reseeded["user_id"] != account["user_id"]
    backups = list((two / ".sealsync").glob("before-reseed-*"))
    assert len(backups) == 1 and (backups[0] / "state.db").exists()  # the old state is kept
    three = tmp_path / "three"
    as_json("init", "--server", server.url, "--join", reseeded["user_id"], *FAST, str(three))
    assert sorted(as_json("sync", str(three))["downloaded"]) == ["a.txt", "b.txt"]
    assert tree(three) == tree(two)
    server.stop()


def test_a_server_that_forgot_the_account_is_named(tmp_path: Path) -> None:
    server = Server(tmp_path, data=None)  # --ephemeral: a restart forgets everything
    try:
        server.start()
        one = tmp_path / "one"
        as_json("init", "--server", server.url, *FAST, str(one))
        (one / "a.txt").write_text("a\n")
        as_json("sync", str(one))
        server.stop()
        server.start()
        (one / "b.txt").write_text("b\n")
        refused = sealsync("sync", str(one), check=4)
        assert "the server no longer knows account" in refused.stderr
        assert "lost or rolled back its data" in refused.stderr
        assert f"sealsync init --reseed {one}" in refused.stderr
        assert sorted(tree(one)) == ["a.txt", "b.txt"]
        watched = sealsync("status", str(one))  # local only: still works
        assert "b.txt" in watched.stdout
        done = as_json("init", "--reseed", *FAST, str(one))
        assert done["user_id"]
        assert "up to date" in sealsync("sync", str(one)).stdout
        server.stop()
    finally:
        if server.sp is not None:
            server.sp.kill()


def _serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
