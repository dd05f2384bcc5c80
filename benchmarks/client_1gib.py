"""Client memory and delta-sync cost on one big file, against a real local stack.

    .venv/bin/python benchmarks/client_1gib.py [--size-mib 1024] [--seed 1] [--json]

Starts its own local stack (benchmarks.stack.BenchStack: python -m local.stack
on free ports, own state file in a temp dir; stopped at the end, even on
error), makes a synced folder (small Argon2id cost, like tests/client_e2e),
writes a --size-mib file of seeded pseudo-random bytes (benchmarks.peers.
write_big), then:

1. one `sealsync sync DIR --json` pass in a child process: its wall time and
   peak RSS: the kernel's high-water mark VmHWM of the child's own memory,
   read from /proc/PID/status every 5 ms until it exits (HWM only grows, so
   polling loses nothing but growth in the child's last 5 ms). Not
   ru_maxrss from wait4: a child spawned by fork/vfork carries the parent's
   RSS high-water mark across exec, so ru_maxrss reported this benchmark's
   own ~128 MiB (boto3, plus Argon2id in init_folder) instead of the client's;
2. overwrites 1 MiB in the middle of the file in place (seeded bytes) and
   syncs again in a child process: wall time, and the bytes the client
   stored in S3, measured by diffing the stack's bucket (list_objects_v2)
   before and after the pass: the summed sizes of the objects that are new
   (chunk envelopes + the new manifest). Objects that are written and then
   deleted within the pass (if any) are not seen by the diff;
3. with --download, a second device of the account (joined in-process)
   syncs the file down in a child process: its wall time and peak RSS
   (`download_s`, `download_rss_mb`), the download path's memory.

Chunk boundaries are keyed by the account (a fresh one each run), so the
re-sync bytes vary from run to run even with the same --seed.

The peak includes the Argon2id that opening the folder runs: its memory cost
is the account's (64 MiB here, the lowest any client accepts; new accounts
default to 256 MiB). The client loads its HTTP and AEAD libraries only after
that step (docs/CLIENT.md, "Memory"), so the two peaks do not add up.

Prints a table, or with --json one JSON object on one line of stdout with at
least the keys rss_peak_mb (MiB, 2^20 bytes), initial_1gib_s,
resync_1mib_bytes_sent, resync_s and size_bytes (the keys are named for
1 GiB whatever --size-mib is; size_bytes says what was run).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "clients")]

import boto3  # noqa: E402
from sealsync_client.folder import Cost, init_folder  # noqa: E402

from benchmarks.peers import write_big  # noqa: E402
from benchmarks.stack import BenchStack  # noqa: E402

MIB = 1 << 20
PASSPHRASE = "correct horse battery staple"
FAST = Cost(ops=2, mem=64 * MIB)  # the lowest Argon2id cost every client accepts
SEALSYNC = Path(sys.executable).parent / "sealsync"


def overwrite_middle(path: Path, size: int, seed: int) -> int:
    """Overwrite 1 MiB in place at the middle of the file; the offset."""
    offset = size // 2
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(random.Random(seed).randbytes(MIB))
        f.flush()
        os.fsync(f.fileno())
    return offset


def watch_hwm(pid: int, peak_kib: list[int], stop: threading.Event) -> None:
    """Keep the highest VmHWM (KiB) of `pid` in peak_kib[0] until it exits."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_kib[0] = max(peak_kib[0], int(line.split()[1]))
                        break
                else:
                    return  # exited: a zombie has no memory lines
        except OSError:
            return
        stop.wait(0.005)


def sync_child(root: Path) -> tuple[float, float, float, dict[str, Any]]:
    """One `sealsync sync --json` pass in a child: (wall s, peak RSS MiB,
    client CPU s, report)."""
    env = {**os.environ, "SEALSYNC_PASSPHRASE": PASSPHRASE}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(SEALSYNC), "sync", str(root), "--json"], env=env,
                                stdout=out, stderr=err)
        peak_kib, stop = [0], threading.Event()
        watcher = threading.Thread(target=watch_hwm, args=(proc.pid, peak_kib, stop))
        watcher.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            stop.set()
            watcher.join()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0 or '"errors": []' not in stdout:
        raise RuntimeError(f"sealsync sync exited {proc.returncode}: {stderr.strip()}\n"
                           f"{stdout[-2000:]}")
    return wall, peak_kib[0] / 1024, usage.ru_utime + usage.ru_stime, json.loads(stdout)


def bucket_objects(s3: Any, bucket: str) -> dict[str, int]:
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            objects[o["Key"]] = o["Size"]
    return objects


def s3_and_folder(stack: BenchStack, work: Path,
                  account: dict[str, Any] | None = None) -> tuple[Any, Path]:
    """The stack's S3 client, and a new synced folder on it (cheap Argon2id);
    `account`, if given, gets its user id and Secret Key (to join it)."""
    info = stack.state
    s3 = boto3.client("s3", endpoint_url=info["aws_endpoint"],
                      region_name=info.get("region") or "us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    folder = init_folder(work / "folder", info["api"], PASSPHRASE, device_name="bench",
                         cost=FAST)
    root = folder.root
    if account is not None:
        account.update(user_id=folder.config.user_id, secret_key=folder.secret_key)
    folder.close()
    return s3, root


def download_pass(stack: BenchStack, work: Path, account: dict[str, Any]) -> dict[str, Any]:
    """A second device of the account syncs everything down in a child: its
    wall time and peak RSS (the download path's memory)."""
    other = init_folder(work / "other", stack.state["api"], PASSPHRASE, device_name="other",
                        join_user_id=account["user_id"], secret_key=account["secret_key"],
                        cost=FAST)
    root = other.root
    other.close()
    wall, rss, cpu, report = sync_child(root)
    return {"download_s": round(wall, 2), "download_rss_mb": round(rss, 1),
            "download_client_cpu_s": round(cpu, 2),
            "files_downloaded": len(report.get("downloaded", []))}


def prefix(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else "(root)"


def run(size_mib: int, seed: int, download: bool = False) -> dict[str, Any]:
    size = size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="sealsync-1gib-") as tmp:
        work = Path(tmp)
        with BenchStack(work) as stack:
            account: dict[str, Any] = {}
            s3, root = s3_and_folder(stack, work, account)
            info = stack.state
            path = root / "big.bin"
            t = time.perf_counter()
            write_big(path, size, seed)
            gen_s = time.perf_counter() - t

            before0 = bucket_objects(s3, info["bucket"])
            initial_s, rss_mb, initial_cpu, report1 = sync_child(root)
            after1 = bucket_objects(s3, info["bucket"])
            initial_new = {k: v for k, v in after1.items() if k not in before0}

            offset = overwrite_middle(path, size, seed + 1)
            resync_s, rss2_mb, resync_cpu, report2 = sync_child(root)
            after2 = bucket_objects(s3, info["bucket"])
            new = {k: v for k, v in after2.items() if after1.get(k) != v}
            by_prefix: dict[str, list[int]] = {}
            for k, v in new.items():
                slot = by_prefix.setdefault(prefix(k), [0, 0])
                slot[0] += 1
                slot[1] += v
            down = download_pass(stack, work, account) if download else {}
            return {
                **down,
                "rss_peak_mb": round(max(rss_mb, rss2_mb), 1),
                "initial_1gib_s": round(initial_s, 2),
                "resync_1mib_bytes_sent": sum(new.values()),
                "resync_s": round(resync_s, 2),
                "size_bytes": size,
                "size_mib": size_mib,
                "seed": seed,
                "initial_rss_mb": round(rss_mb, 1),
                "initial_client_cpu_s": round(initial_cpu, 2),
                "resync_client_cpu_s": round(resync_cpu, 2),
                "initial_mb_per_s": round(size / 1e6 / initial_s, 1),
                "initial_bytes_stored": sum(initial_new.values()),
                "initial_objects": len(initial_new),
                "resync_new_objects": by_prefix,
                "resync_rss_mb": round(rss2_mb, 1),
                "overwrite_offset": offset,
                "generate_s": round(gen_s, 2),
                "bytes_measured_by": "S3 bucket diff (list_objects_v2 before/after each pass)",
                "rss_measured_by": "VmHWM of the client process, polled every 5 ms",
                "files_uploaded": sum(len(r.get("uploaded", [])) for r in (report1, report2)),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--download", action="store_true",
                        help="then a second device downloads it: download_s, download_rss_mb")
    args = parser.parse_args()
    r = run(args.size_mib, args.seed, args.download)
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return
    mib = r["resync_1mib_bytes_sent"] / MIB
    rows = [
        (f"initial sync of {r['size_mib']} MiB", f"{r['initial_1gib_s']:.2f} s",
         f"{r['initial_mb_per_s']} MB/s"),
        ("client peak RSS (both passes)", f"{r['rss_peak_mb']:.1f} MiB",
         f"initial {r['initial_rss_mb']:.1f}, re-sync {r['resync_rss_mb']:.1f} "
         f"({'ok' if r['rss_peak_mb'] <= 100 else 'over'} target <= 100)"),
        ("re-sync after 1 MiB overwrite", f"{r['resync_s']:.2f} s", ""),
        ("bytes stored by the re-sync", f"{r['resync_1mib_bytes_sent']:,}",
         f"{mib:.2f} MiB ({'ok' if mib <= 2 else 'over'} target <= 2 MiB)"),
    ]
    for name, value, note in rows:
        print(f"{name:<34} {value:>16}  {note}")
    if "download_rss_mb" in r:
        print(f"{'download by a second device':<34} {r['download_s']:>14.2f} s  "
              f"peak RSS {r['download_rss_mb']:.1f} MiB")
    for p, (count, total) in sorted(r["resync_new_objects"].items()):
        print(f"  new objects under {p + '/':<14} {count:>4}  {total:,} bytes")


if __name__ == "__main__":
    main()
