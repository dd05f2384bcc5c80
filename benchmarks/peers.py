"""sealsync, rclone (crypt over s3) and restic (s3 backend) on the same corpus,
against the same moto server, each through the same counting proxy.

Each run is a child process: wall seconds, peak RSS (os.wait4 on that child
alone) and, from the proxies, the bytes and requests it sent. sealsync also
talks to its API, so its figure is S3 + API bytes (both listed).
"""
from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.proxy import Counts
from benchmarks.stack import BenchStack

MIB = 1 << 20
BLOCK = 8 * MIB
PASSPHRASE = "correct horse battery staple"
TOOLS = ("sealsync", "rclone", "restic")
META = ".sealsync"  # the client's own folder, never synced by the peers
SEALSYNC = Path(sys.executable).parent / "sealsync"


def base_env() -> dict[str, str]:
    """Our environment without AWS settings that would steer the peers
    elsewhere (a CA bundle makes rclone's S3 client refuse plain HTTP)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "SEALSYNC_", "RCLONE_", "RESTIC_"))}


class ToolMissing(RuntimeError):
    """A peer is not installed and could not be installed."""


def ensure_installed(tools: tuple[str, ...] = ("rclone", "restic")) -> list[str]:
    """Install missing peers from Debian packages when root can; raise with a
    clear message otherwise. Returns what was installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return []
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ToolMissing(f"{' '.join(missing)} not installed, and cannot install them "
                          f"(not root or no apt-get): apt-get install {' '.join(missing)}")
    print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
    cmd = ["apt-get", "install", "-y", "-q", *missing]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False)
        subprocess.run(cmd, capture_output=True, check=True)
    return missing


# -- the corpus --------------------------------------------------------------
def write_big(path: Path, size: int, seed: int) -> None:
    """`size` seeded pseudo-random bytes, streamed in 8 MiB blocks."""
    rng = random.Random(seed)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n


def overwrite_middle(path: Path, seed: int) -> None:
    """Overwrite 1 MiB in place at the middle of the file."""
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(seed).randbytes(MIB))


def write_small(root: Path, count: int, seed: int) -> int:
    """`count` files of 1-16 KiB in 100 folders; returns their total bytes."""
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        folder = root / f"d{i % 100:02d}"
        folder.mkdir(exist_ok=True)
        n = rng.randint(1024, 16 * 1024)
        (folder / f"f{i:05d}.bin").write_bytes(rng.randbytes(n))
        total += n
    return total


# -- one measured run ----------------------------------------------------------
@dataclass
class Run:
    seconds: float
    rss_mb: float
    s3: Counts
    api: Counts = field(default_factory=Counts)

    @property
    def bytes_sent(self) -> int:
        return self.s3.bytes_sent + self.api.bytes_sent

    def as_dict(self) -> dict[str, Any]:
        return {"s": round(self.seconds, 2), "rss_mb": round(self.rss_mb, 1),
                "bytes_sent": self.bytes_sent, "s3": self.s3.as_dict(),
                "api": self.api.as_dict()}


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a running process: its peak RSS since its exec, in MiB.
    (ru_maxrss from wait4 is no use here: Linux carries the forking parent's
    RSS into the child's figure at exec.)"""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(cmd: list[str], env: dict[str, str], stack: BenchStack) -> Run:
    """Run one child; its wall time, peak RSS and what it sent."""
    assert stack.api is not None
    s3_0, api_0 = stack.s3.snapshot(), stack.api.snapshot()
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, peak_rss_mb(proc.pid))
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: "
                               f"{out.read()[-2000:].decode()}")
    return Run(seconds, peak, stack.s3.snapshot().minus(s3_0),
               stack.api.snapshot().minus(api_0))


# -- the three tools -------------------------------------------------------------
class Sealsync:
    def __init__(self, stack: BenchStack, work: Path) -> None:
        self.stack = stack
        self.work = work
        self.env = {**base_env(), "SEALSYNC_PASSPHRASE": PASSPHRASE}

    def folder(self, name: str) -> Path:
        """A new synced folder (its own account), to write a corpus into."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))
        from sealsync_client.folder import Cost, init_folder

        assert self.stack.api is not None
        f = init_folder(self.work / name, self.stack.api.url, PASSPHRASE,
                        device_name=f"bench-{name}", cost=Cost(ops=2, mem=64 * MIB))
        root = f.root
        f.close()
        return Path(root)

    def sync(self, src: Path) -> Run:
        return timed([str(SEALSYNC), "sync", str(src), "--json"], self.env, self.stack)


class Rclone:
    """rclone copy into a crypt remote over an s3 remote (provider Other)."""

    def __init__(self, stack: BenchStack, work: Path) -> None:
        self.stack = stack
        obscured = subprocess.run(["rclone", "obscure", PASSPHRASE], capture_output=True,
                                  text=True, check=True).stdout.strip()
        self.env = {**base_env(), "RCLONE_CONFIG": str(work / "rclone.conf"),
                    "RCLONE_CONFIG_S3_TYPE": "s3", "RCLONE_CONFIG_S3_PROVIDER": "Other",
                    "RCLONE_CONFIG_S3_ENDPOINT": stack.s3.url,
                    "RCLONE_CONFIG_S3_ACCESS_KEY_ID": "testing",
                    "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "testing",
                    "RCLONE_CONFIG_S3_REGION": "us-east-1",
                    "RCLONE_CONFIG_S3_FORCE_PATH_STYLE": "true",
                    "RCLONE_CONFIG_SC_TYPE": "crypt", "RCLONE_CONFIG_SC_PASSWORD": obscured}
        self.n = 0

    def sync(self, src: Path, dest: str | None = None) -> Run:
        env = {**self.env, "RCLONE_CONFIG_SC_REMOTE": f"s3:rclone-bench/{dest or src.name}"}
        return timed(["rclone", "copy", str(src), "sc:", "--exclude", f"/{META}/**",
                      "--no-update-modtime"], env, self.stack)

    def check(self, src: Path, dest: str | None = None) -> Run:
        """`rclone check` of `src` against what `sync` copied there: both
        listings, compared by size (a crypt remote has no hashes in common
        with the local side). Exits non-zero on any difference."""
        env = {**self.env, "RCLONE_CONFIG_SC_REMOTE": f"s3:rclone-bench/{dest or src.name}"}
        return timed(["rclone", "check", str(src), "sc:", "--exclude", f"/{META}/**"],
                     env, self.stack)


class Restic:
    """restic backup to its s3 backend (one repository per corpus)."""

    def __init__(self, stack: BenchStack, work: Path) -> None:
        self.stack = stack
        self.env = {**base_env(), "RESTIC_PASSWORD": PASSPHRASE,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "XDG_CACHE_HOME": str(work / "restic-cache")}
        self.repos: set[str] = set()

    def sync(self, src: Path, repo: str | None = None) -> Run:
        name = repo or src.name
        env = {**self.env,
               "RESTIC_REPOSITORY": f"s3:{self.stack.s3.url}/restic-bench-{name.lower()}"}
        if name not in self.repos:  # repository setup is not part of the timing
            subprocess.run(["restic", "init"], env=env, capture_output=True, check=True)
            self.repos.add(name)
        return timed(["restic", "backup", "--quiet", "--exclude", str(src / META),
                      str(src)], env, self.stack)


def peer_runs(stack: BenchStack, work: Path, big_mib: int, small_count: int,
              seed: int, log: Any = print) -> dict[str, Any]:
    """The 1 GiB initial + resync and the small-files sync, for all three."""
    sealsync = Sealsync(stack, work)
    tools: dict[str, Any] = {"sealsync": sealsync, "rclone": Rclone(stack, work),
                             "restic": Restic(stack, work)}
    big_root, small_root = sealsync.folder("big"), sealsync.folder("small")
    t = time.perf_counter()
    write_big(big_root / "big.bin", big_mib * MIB, seed)
    small_bytes = write_small(small_root, small_count, seed + 1)
    log(f"corpus: {big_mib} MiB file + {small_count} small files "
        f"({small_bytes / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    out: dict[str, dict[str, Any]] = {"initial_big": {}, "resync": {}, "initial_small": {}}
    for name, tool in tools.items():
        run = tool.sync(big_root)
        out["initial_big"][name] = run
        log(f"{name}: initial {big_mib} MiB in {run.seconds:.1f} s")
    overwrite_middle(big_root / "big.bin", seed + 2)
    for name, tool in tools.items():
        run = tool.sync(big_root)
        out["resync"][name] = run
        log(f"{name}: resync after 1 MiB overwrite: {run.bytes_sent:,} bytes sent")
    handler: dict[str, Any] = {}
    for name, tool in tools.items():
        since = time.time()
        before = stack.calls_before(since)
        run = tool.sync(small_root)
        if name == "sealsync":
            handler = batch_handler_ms(stack.handler_runs(since, time.time()), small_count,
                                       before)
        out["initial_small"][name] = run
        log(f"{name}: {small_count} small files in {run.seconds:.1f} s "
            f"({run.s3.methods.get('PUT', 0)} S3 PUTs)")
    return {"big_mib": big_mib, "small_count": small_count, "small_bytes": small_bytes,
            "batch_handler_ms": handler, "runs": out, "tools": tools,
            "roots": {"big": big_root, "small": small_root}}


def batch_handler_ms(runs: list[dict[str, Any]], files: int,
                     before: dict[str, int] | None = None) -> dict[str, Any]:
    """The commit handler's time during the small-file sync, as Lambda would
    bill it: summed over its invocations (each batch's bundle is one
    message), per 1,000 files and per batch. Measured on moto, whose
    DynamoDB is slower than AWS's, so an upper bound (benchmarks/README.md).

    Also the issue's counts per 1,000 files: handler invocations, and the
    DynamoDB requests of the whole stack (API and handler) from `before`
    (BenchStack.calls_before) to the window's last run."""
    total = sum(r["ms"] for r in runs)
    batches = sum(r["messages"] for r in runs)
    if not runs or not files:
        return {}
    out: dict[str, Any] = {
        "per_1000_files": round(total * 1000 / files, 1),
        "per_batch": round(total / batches, 1) if batches else None,
        "invocations": len(runs), "batches": batches, "files": files,
        "total_ms": round(total, 1),
        "invocations_per_1000_files": round(len(runs) * 1000 / files, 2)}
    counted = [r for r in runs if "ddb_writes" in r]
    if counted:
        last = max(counted, key=lambda r: r["ddb_writes"])
        for key in ("ddb_writes", "ddb_reads"):
            done = last[key] - (before or {}).get(key, 0)
            out[f"{key}_per_1000_files"] = round(done * 1000 / files, 1)
    return out


NOOP_RUNS = 3  # best of: a pass is a second or two even at 10,000 files


def no_op_passes(sealsync: Sealsync, rclone: Rclone, small_root: Path, big_root: Path,
                 n: int, log: Any = print) -> dict[str, Any]:
    """Change detection's cost: a sealsync pass with nothing to do over the
    synced small files, against `rclone check` of the copy rclone made of
    them; best of `n` each. The same over the one-file big folder is the
    fixed part of a pass (start-up, key file, one feed page, one listing).

    The first sealsync pass after the initial sync is not a no-op: it reads
    back the feed entries of its own uploads (`settle_s`), so it is timed
    apart, before the best-of-n."""
    settle = sealsync.sync(small_root)
    sealsync.sync(big_root)
    log(f"sealsync: first pass after the initial sync, reading its own uploads back "
        f"from the feed: {settle.seconds:.2f} s, {settle.api.requests} API requests")
    runs: dict[str, dict[str, Run]] = {"noop_small": {}, "noop_floor": {}}
    times: dict[str, dict[str, list[float]]] = {"noop_small": {}, "noop_floor": {}}
    for phase, root in (("noop_small", small_root), ("noop_floor", big_root)):
        for name, go in (("sealsync", sealsync.sync), ("rclone", rclone.check)):
            tries = [go(root) for _ in range(n)]
            for t in tries:
                if t.s3.methods.get("PUT") or t.s3.methods.get("POST"):
                    raise RuntimeError(f"{name}: a pass meant to change nothing wrote to "
                                       f"S3: {t.as_dict()}")
            runs[phase][name] = min(tries, key=lambda t: t.seconds)
            times[phase][name] = [round(t.seconds, 3) for t in tries]
        log(f"{phase}: sealsync {min(times[phase]['sealsync']):.2f} s, rclone check "
            f"{min(times[phase]['rclone']):.2f} s (best of {n})")
    return {"runs": runs, "tries_s": times, "settle_s": round(settle.seconds, 2),
            "settle": settle.as_dict()}
