"""The local stack in a subprocess, on free ports, with its own state file.

The subprocess leads its own process group (it and its redis-server), so
whatever happens in a test, teardown can take the whole group down: no
process outlives the session.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60


class StackProcess:
    def __init__(self, workdir: Path, *extra: str, name: str = "stack",
                 env: dict[str, str] | None = None) -> None:
        self.state_file = workdir / "stack.json"
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_lines: list[str] = []
        self._ready = threading.Event()
        self._stderr = self.stderr_path.open("wb")
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")},
               **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack", "--api-port", "0", "--moto-port", "0",
             "--redis-port", "0", "--state-file", str(self.state_file), "--exit-with-parent",
             *(extra if "--data-dir" in extra else ("--ephemeral", *extra))],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.state: dict[str, Any] = {}

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line.rstrip("\n"))
            if line.strip() == "ready":
                self._ready.set()

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the stack did not become ready (exit {self.proc.returncode})\n"
                            f"stdout: {self.stdout_lines}\nstderr:\n{self.stderr()[-4000:]}")
        self.state = json.loads(self.state_file.read_text())
        return self.state

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 20) -> int | None:
        """Ask the stack to stop; kill its process group if it will not."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout_s)
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """Take down the whole process group (the stack and its redis-server)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reader.join(5)
        self._stderr.close()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes; it only waits to be reaped.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


@contextlib.contextmanager
def running_stack(workdir: Path) -> Iterator[StackProcess]:
    """A ready stack in `workdir`, stopped (with all it started) on exit."""
    sp = StackProcess(workdir)
    try:
        sp.wait_ready()
        yield sp
    finally:
        sp.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    """One stack for the session (each test makes its own accounts)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as sp:
        yield sp
