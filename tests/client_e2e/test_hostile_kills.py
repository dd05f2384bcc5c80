"""`sealsync sync` killed (SIGKILL) mid-upload of a multi-pack file several
times in a row, with edits between the kills, and interrupted (SIGINT)
mid-download: every device ends with the same tree, nothing is lost, and
no traceback reaches the user."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
FAST = ["--kdf-ops", "2", "--kdf-mem-mib", "64"]
MiB = 1024 * 1024


def env(secret_key: str = "") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO / "clients"),
            "SEALSYNC_PASSPHRASE": "cli passphrase", "SEALSYNC_SECRET_KEY": secret_key,
            "SEALSYNC_NO_REMEMBER": "1"}


def run(*args: str, secret_key: str = "",
        check: int | None = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "sealsync_client", *args],
                          env=env(secret_key), capture_output=True, text=True, timeout=180)
    if check is not None:
        assert done.returncode == check, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def started(*args: str, sig: int, after: float) -> subprocess.CompletedProcess[str]:
    """Run the CLI and send it `sig` after `after` seconds (if still running)."""
    proc = subprocess.Popen([sys.executable, "-m", "sealsync_client", *args], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=after)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def tree(root: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d != ".sealsync"]
        for name in files:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def digests(root: Path) -> dict[str, str]:
    """Each synced file's SHA-256 by path: a failure then prints digests,
    not tens of MiB of bytes (one did, and its report overflowed xdist)."""
    return {path: digest(data) for path, data in tree(root).items()}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pair_with_key(stack: StackProcess, tmp: Path) -> tuple[Path, Path, str]:
    """Two devices of a new account, and its Secret Key."""
    api = stack.state["api"]
    one, two = tmp / "one", tmp / "two"
    account: Any = json.loads(run("init", "--server", api, "--device", "one", *FAST,
                                  str(one), "--json").stdout)
    run("init", "--server", api, "--join", account["user_id"], "--device", "two", *FAST,
        str(two), "--json", secret_key=account["secret_key"])
    return one, two, account["secret_key"]


def pair(stack: StackProcess, tmp: Path) -> tuple[Path, Path]:
    one, two, _ = pair_with_key(stack, tmp)
    return one, two


def settle(*roots: Path) -> None:
    for _ in range(6):
        changed = False
        for root in roots:
            report = json.loads(run("sync", str(root), "--json").stdout)
            changed |= any(report.get(k) for k in
                           ("uploaded", "downloaded", "deleted_here", "deleted_remote",
                            "renamed", "conflicts"))
            assert not report.get("errors"), report
        if not changed:
            return
    raise AssertionError("no quiescence")


@pytest.mark.xfail(strict=False, reason=(
    "known bug, open: after kills mid-upload with edits between, device one sometimes ends "
    "with its newest edit as a conflict copy of its own file and an older version of its "
    "own as big.bin (nothing lost, one spurious conflict). Timing-dependent (about one run "
    "in three on main at e6e9942). Suspected: a pass killed after its batch committed but "
    "before it recorded the verdict; adopting such a revision as the base in "
    "engine_pull._apply_remote made it worse, so the cause is not that alone."))
def test_killed_uploads_with_edits_between_then_both_devices_agree(
        stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    data = bytearray(os.urandom(40 * MiB))
    (one / "big.bin").write_bytes(data)
    (one / "small.txt").write_bytes(b"small")
    killed = 0
    for i, after in enumerate((1.5, 2.5, 1.0, 3.5)):
        done = started("sync", "--bwlimit", "8M", str(one), sig=signal.SIGKILL, after=after)
        assert "Traceback" not in done.stderr, done.stderr
        killed += done.returncode == -signal.SIGKILL
        at = (i * 7 + 3) * MiB
        data[at:at + 4096] = os.urandom(4096)
        (one / "big.bin").write_bytes(bytes(data))
        # the other device syncs while one is half-way
        run("sync", str(two))
    assert killed == 4  # every pass really died mid-way (the rate limit keeps it going)
    settle(one, two)
    assert digests(one) == digests(two) == {"big.bin": digest(bytes(data)),
                                      "small.txt": digest(b"small")}


def test_sigint_mid_download_then_sync_again(stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    data = os.urandom(48 * MiB)
    (one / "big.bin").write_bytes(data)
    run("sync", str(one))
    interrupted = 0
    for after in (1.0, 2.0):
        done = started("sync", "--bwlimit", "8M", str(two), sig=signal.SIGINT, after=after)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 130), (done.returncode, done.stderr)
        interrupted += done.returncode == 130
    assert interrupted == 2
    settle(two, one)
    assert digests(one) == digests(two) == {"big.bin": digest(data)}


def test_sigint_mid_upload_is_one_line_and_resumes(stack: StackProcess, tmp_path: Path) -> None:
    one, two = pair(stack, tmp_path)
    data = os.urandom(40 * MiB)
    (one / "big.bin").write_bytes(data)
    done = started("sync", "--bwlimit", "8M", str(one), sig=signal.SIGINT, after=2.5)
    assert done.returncode == 130, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines() == [
        "sealsync: error: interrupted; the next sync carries on where this one stopped"]
    settle(one, two)
    assert digests(one) == digests(two) == {"big.bin": digest(data)}
