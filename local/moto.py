"""moto server for the local stack, patched to behave (`moto_patches.py`).

`MotoServer` runs moto on a thread of the calling process (the integration
and property tests use it); `MotoProcess` runs it in a child process
(`python -m local.moto --port N`), so the local stack gets a second core:
with both in one process, moto and the API share one GIL and the stack is
CPU-bound at ~15 small files/s. Both apply the same patches
(`local/moto_patches.py`).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from local.moto_patches import DYNAMODB_LOCK, patch_moto
from local.services import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]


class MotoServer:
    """moto in server mode (S3, DynamoDB, SQS, SNS) in a background thread."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        patch_moto()
        self.port = port or free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port,
                                          verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server.start()
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        self._server.stop()


class MotoProcess:
    """The same patched moto server in a child process. The child exits when
    this process dies (it watches its parent), so a killed stack leaves no
    moto behind.

    With `data_dir`, the child also writes snapshots there (local/persist.py)
    every `snapshot_interval_s`, on stop and when its parent dies, once it is
    armed (`arm()`, after the stack restored the last snapshot: a half-restored
    moto must never overwrite a good snapshot)."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None,
                 snapshot_interval_s: float = 30.0) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.snapshot_interval_s = snapshot_interval_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> MotoProcess:
        extra = [] if self.data_dir is None else [
            "--data-dir", str(self.data_dir), "--snapshot-interval",
            str(self.snapshot_interval_s)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.moto", "--port", str(self.port),
             "--parent", str(os.getpid()), *extra], cwd=REPO)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto exited with {self.proc.returncode} on start")
            try:
                wait_for_port(self.port, timeout_s=0.5)
                return self
            except TimeoutError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise

    def arm(self) -> None:
        """Start snapshotting (the child ignores this without a data dir)."""
        if self.proc is not None and self.data_dir is not None:
            self.proc.send_signal(signal.SIGUSR1)

    def stop(self, timeout_s: float = 120.0) -> None:
        """SIGTERM: an armed child writes its last snapshot, then exits."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s if self.data_dir else 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None


class _Keeper:
    """The child's snapshots: none until armed, then every interval and last
    on the way out (stop, or the parent gone even by kill -9)."""

    def __init__(self, data_dir: Path | None, interval_s: float) -> None:
        self.armed = threading.Event()
        self.interval_s = interval_s
        self.snapshotter = None
        if data_dir is not None:
            from local.persist import DataDir, Snapshotter

            self.snapshotter = Snapshotter(DataDir(data_dir), DYNAMODB_LOCK)

    def run(self, stopping: threading.Event) -> None:
        while not self.armed.wait(0.5):
            if stopping.is_set():
                return
        while not stopping.wait(self.interval_s):
            self.take()

    def take(self) -> None:
        if self.snapshotter is None or not self.armed.is_set():
            return
        import logging

        try:
            logging.getLogger("sealsync.persist").info("%s", self.snapshotter.take())
        except Exception as exc:  # noqa: BLE001 - the next one retries; the last one stands
            logging.getLogger("sealsync.persist").warning("snapshot failed: %s: %s",
                                                          type(exc).__name__, exc)


def _exit_with(parent: int, keeper: _Keeper) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    keeper.take()  # the stack died (perhaps kill -9): keep what it committed
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m local.moto",
                                description="the local stack's patched moto server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--parent", type=int, default=0, help="exit when this pid is gone")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="write snapshots here once armed by SIGUSR1 (local/persist.py)")
    p.add_argument("--snapshot-interval", type=float, default=30.0, metavar="SECONDS")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    keeper = _Keeper(args.data_dir, args.snapshot_interval)
    stopping = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: keeper.armed.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    # Ctrl-C reaches the whole process group: the stack stops first, then
    # stops us (SIGTERM), so the last snapshot comes after the last commit.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.parent:
        threading.Thread(target=_exit_with, args=(args.parent, keeper), daemon=True).start()
    server = MotoServer(args.port).start()
    threading.Thread(target=keeper.run, args=(stopping,), daemon=True).start()
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        keeper.take()
        server.stop()


if __name__ == "__main__":
    main()
