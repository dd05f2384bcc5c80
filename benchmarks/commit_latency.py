"""Commit latency against a running local stack (`make dev`).

Commit latency is the time from the manifest PUT returning to the verdict
being visible to the client through one long poll,
GET /v1/uploads/{id}?wait=20. It covers the S3 notification, the queue, the
event pump, the commit handler (lock, checks, fenced transaction, manifest
copy) and the Redis wake-up of the long poll.

Each sample is a 1 KiB manifest (a small file riding inline, no chunks),
uploaded as successive revisions of one file (or of a new file each time
with --new-files), one at a time.

    .venv/bin/python benchmarks/commit_latency.py [-n 50] [--json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from local.apiclient import Client, new_file_id, read_state  # noqa: E402

DEFAULT_STATE = Path(__file__).resolve().parent.parent / ".sealsync-stack.json"
MANIFEST_BYTES = 1024
WAIT_S = 20


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile: a value that was actually measured."""
    s = sorted(values)
    return s[max(1, math.ceil(p / 100 * len(s))) - 1]


def one_commit(api: Client, dev: Any, file_id: str, base: int) -> tuple[float, int]:
    """Upload one version; return (ms from manifest PUT to verdict, revision)."""
    manifest = secrets.token_bytes(MANIFEST_BYTES)
    ticket = api.create_upload(dev, file_id, base, manifest)
    api.put_blob(ticket["manifest_url"], manifest, ticket.get("manifest_headers"))
    t0 = time.perf_counter()
    result = api.status(dev, ticket["upload_id"], WAIT_S)
    ms = (time.perf_counter() - t0) * 1000
    if result["status"] != "accepted":
        raise SystemExit(f"upload {ticket['upload_id']} ended {result}, not accepted")
    return ms, int(result["revision"])


def run(api: Client, n: int, warmup: int, new_files: bool) -> list[float]:
    dev = api.signup()
    file_id, head = new_file_id(), 0
    samples: list[float] = []
    for i in range(warmup + n):
        if new_files:
            file_id, head = new_file_id(), 0
        ms, head = one_commit(api, dev, file_id, head)
        if i >= warmup:
            samples.append(ms)
    return samples


def table_items(state: dict[str, Any]) -> int | None:
    """Items in the stack's table. moto deep-copies the whole table for each
    item of a transaction, so its commit cost grows with this number (real
    DynamoDB's does not): compare figures at similar sizes, or on a fresh stack."""
    try:
        import boto3

        db = boto3.client("dynamodb", endpoint_url=state["aws_endpoint"],
                          region_name=state.get("region", "us-east-1"),
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        return int(db.scan(TableName=state["table"], Select="COUNT")["Count"])
    except Exception:  # noqa: BLE001 - only context for the figures
        return None


def summary(samples: list[float], state: dict[str, Any], args: argparse.Namespace,
            items_before: int | None) -> dict[str, Any]:
    s = sorted(samples)
    return {
        "benchmark": "commit_latency",
        "definition": "manifest PUT returned -> verdict via GET /v1/uploads/{id}?wait=20",
        "n": len(s), "warmup": args.warmup, "manifest_bytes": MANIFEST_BYTES,
        "files": "new file per upload" if args.new_files else "successive revisions of one file",
        "redis": state.get("redis"), "api": state.get("api"),
        "p50_ms": round(percentile(s, 50), 2), "p90_ms": round(percentile(s, 90), 2),
        "p99_ms": round(percentile(s, 99), 2), "mean_ms": round(statistics.fmean(s), 2),
        "min_ms": round(s[0], 2), "max_ms": round(s[-1], 2),
        "table_items_before": items_before, "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--uploads", type=int, default=50, help="measured uploads")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured uploads first")
    p.add_argument("--new-files", action="store_true",
                   help="a new file per upload instead of successive revisions")
    p.add_argument("--state-file", type=Path,
                   default=Path(os.environ.get("SEALSYNC_STATE", DEFAULT_STATE)))
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.uploads < 1:
        p.error("--uploads must be at least 1")
    state = read_state(args.state_file)
    items_before = table_items(state)
    samples = run(Client(state["api"]), args.uploads, args.warmup, args.new_files)
    result = summary(samples, state, args, items_before)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"commit latency over {result['n']} uploads of {MANIFEST_BYTES} B manifests "
              f"({result['files']}, redis: {result['redis']}, "
              f"{result['table_items_before']} table items before)")
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
            print(f"  {key[:-3]:>4}  {result[key]:8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
