"""Upload resume: bytes re-sent after a 1 GiB upload is killed at 50%.

    .venv/bin/python -m benchmarks.resume [--size-mib 1024] [--at 0.5] [--seed 1]
                                          [--client-src DIR] [--json]

Starts its own local stack (benchmarks.stack.BenchStack: presigned URLs
through the byte-counting proxy, benchmarks/proxy.py), makes a synced
folder, writes a --size-mib file of seeded pseudo-random bytes, then:

1. starts `sealsync sync DIR` in a child process and SIGKILLs it as soon as
   the proxy has carried --at (50%) of the file's size in request bodies;
2. runs `sealsync sync DIR` again to the end;
3. re-sent = bytes sent by both passes - bytes the upload needs (the objects
   it left in the bucket: chunk envelopes and the manifest bundle).

The target is re-sent <= 5% of the file (docs/CLIENT.md, "Resume"). Only
the PUTs in flight at the kill should be sent twice: the client journals
every chunk S3 accepted (clients/sealsync_client/resume.py). --client-src
runs another copy of the client (e.g. `git archive` of an older commit's
clients/) to compare.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "clients")]


import boto3  # noqa: E402

from benchmarks.client_1gib import PASSPHRASE, bucket_objects, s3_and_folder  # noqa: E402
from benchmarks.peers import write_big  # noqa: E402
from benchmarks.stack import BenchStack  # noqa: E402

MIB = 1 << 20
TARGET_PCT = 5.0


def client_env(src: Path, work: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "SEALSYNC_PASSPHRASE": PASSPHRASE,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
            "SEALSYNC_REMEMBER_DIR": str(work / "remembered")}


def needed_bytes(s3: Any, info: dict[str, Any], root: Path) -> int:
    """What the upload needs: every object in the bucket, except packs no
    chunk location names. A pack PUT by the killed pass that it never
    recorded is an orphan (the next pass sends its chunks in a new pack):
    counting it as needed would hide exactly the bytes sent twice."""
    user_id = json.loads((root / ".sealsync" / "config.json").read_text())["user_id"]
    db = boto3.client("dynamodb", endpoint_url=info["aws_endpoint"],
                      region_name=info.get("region") or "us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    named: set[str] = set()
    for page in db.get_paginator("query").paginate(
            TableName=info["table"], KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": f"L#{user_id}"}}):
        named.update(it["pack"]["S"] for it in page["Items"])
    return sum(size for key, size in bucket_objects(s3, info["bucket"]).items()
               if not key.startswith("packs/") or key.rsplit("/", 1)[1] in named)


def run(size_mib: int, at: float, seed: int, src: Path) -> dict[str, Any]:
    size = size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="sealsync-resume-") as tmp:
        work = Path(tmp)
        with BenchStack(work) as stack:
            s3, root = s3_and_folder(stack, work)
            info = stack.state
            write_big(root / "big.bin", size, seed)
            env = client_env(src, work)
            argv = [sys.executable, "-m", "sealsync_client", "sync", str(root), "--json"]

            before = stack.s3.snapshot()
            t0 = time.perf_counter()
            child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
            while child.poll() is None and \
                    stack.s3.snapshot().minus(before).body_bytes < size * at:
                time.sleep(0.01)
            killed = child.poll() is None  # a toy size (make bench --smoke) may finish first
            if killed:
                child.send_signal(signal.SIGKILL)
            elif child.wait() != 0:
                raise RuntimeError(f"the first pass failed: "
                                   f"{child.stderr.read() if child.stderr else ''}")
            child.wait()
            killed_s = time.perf_counter() - t0
            time.sleep(1.0)  # let the proxy finish forwarding what was in flight
            first = stack.s3.snapshot().minus(before).body_bytes

            mid = stack.s3.snapshot()
            t1 = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1800)
            uploaded = json.loads(done.stdout).get("uploaded") if done.returncode == 0 else None
            if uploaded != (["big.bin"] if killed else []):
                raise RuntimeError(f"the resumed pass failed ({done.returncode}): "
                                   f"{done.stderr.strip()[-2000:]}")
            resume_s = time.perf_counter() - t1
            second = stack.s3.snapshot().minus(mid).body_bytes
            needed = needed_bytes(s3, info, root)
            resent = first + second - needed
            return {
                "resume_resent_bytes": resent,
                "resume_resent_pct": round(100 * resent / size, 2),
                "resume_target_pct": TARGET_PCT,
                "size_bytes": size,
                "killed": killed,
                "killed_at_bytes": first,
                "killed_after_s": round(killed_s, 2),
                "resumed_bytes": second,
                "resumed_s": round(resume_s, 2),
                "needed_bytes": needed,
                "client_src": str(src),
                "bytes_measured_by": "request bodies through the presign proxy; needed = "
                                     "sizes of the objects in the bucket afterwards, "
                                     "but packs no chunk location names",
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--at", type=float, default=0.5, help="kill at this share sent")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--client-src", type=Path, default=REPO / "clients",
                        help="the directory holding the sealsync_client package to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    r = run(args.size_mib, args.at, args.seed, args.client_src.resolve())
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return
    verdict = "ok" if r["resume_resent_pct"] <= TARGET_PCT else "over"
    print(f"killed after {r['killed_at_bytes']:,} bytes ({r['killed_after_s']} s); the "
          f"resumed pass sent {r['resumed_bytes']:,} bytes ({r['resumed_s']} s)")
    print(f"re-sent {r['resume_resent_bytes']:,} bytes = {r['resume_resent_pct']}% of "
          f"{r['size_bytes']:,} ({verdict}: target <= {TARGET_PCT}%)")


if __name__ == "__main__":
    main()
