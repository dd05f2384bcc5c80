"""The local stack for a benchmark: `python -m local.stack` in its own process
group on free ports, with counting proxies in front of its S3 (moto) and its
API, so that presigned URLs, rclone and restic all go through them."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.proxy import CountingProxy
from local.services import free_port

REPO = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 90


class BenchStack:
    """Start with `with BenchStack(workdir) as st:`; st.state is the stack's
    state file, st.s3 / st.api the proxies (st.s3.url for every S3 client)."""

    def __init__(self, workdir: Path, extra_args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.moto_port = free_port()
        self.s3 = CountingProxy(self.moto_port)
        self.api: CountingProxy | None = None
        self.state_file = workdir / "stack.json"
        self.stderr_path = workdir / "stack.stderr"
        self.handler_log = workdir / "handler-runs.jsonl"  # local/pump.py writes it
        self.extra_args = extra_args or []
        self.state: dict[str, Any] = {}
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> BenchStack:
        self.s3.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")}
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack", "--api-port", "0",
             "--moto-port", str(self.moto_port), "--redis-port", "0",
             "--state-file", str(self.state_file), "--exit-with-parent",
             "--presign-endpoint", self.s3.url, "--ephemeral",
             "--handler-log", str(self.handler_log), *self.extra_args],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            start_new_session=True)
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.strip() == "ready":
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.stderr_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the local stack did not start:\n{tail}")
        self.state = json.loads(self.state_file.read_text())
        api_port = int(self.state["api"].rsplit(":", 1)[1])
        self.api = CountingProxy(api_port).start()
        return self

    def stop(self) -> None:
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(20)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # the stack's own group only
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
            self.proc = None
            self._stderr.close()
        self.s3.stop()

    def handler_runs(self, since: float, until: float) -> list[dict[str, Any]]:
        """The commit handler's invocations that ended in [since, until]
        (wall clock): each one's `ms` and `messages` (staging objects)."""
        try:
            lines = self.handler_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        runs = [json.loads(line) for line in lines if line.strip()]
        return [r for r in runs if since <= r["end"] <= until]

    def calls_before(self, since: float) -> dict[str, int]:
        """The stack's cumulative DynamoDB request counts (local/aws_calls.py)
        as of its last handler run before `since`: the baseline a later
        window's counts are taken from. Empty before any run."""
        earlier = [r for r in self.handler_runs(0.0, since) if "ddb_writes" in r]
        last = max(earlier, key=lambda r: r["ddb_writes"], default=None)
        return {} if last is None else {k: last[k] for k in ("ddb_writes", "ddb_reads")}

    def __enter__(self) -> BenchStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
