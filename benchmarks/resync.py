"""The re-sync after a 1 MiB overwrite, alone, with every byte accounted for.

    .venv/bin/python -m benchmarks.resync [--size-mib 1024] [--seed 1] [--runs 1] [--json]

What `make bench` measures as sealsync's `resync_1mib_bytes_sent` (the same
corpus, overwrite and counting proxies as benchmarks/peers.py), without the
peers, and broken down so that a figure over the 2 MiB target names its
cause:

- the bytes on the wire, S3 and API apart: request bodies by route
  (`PUT /bucket/*/p/*` is a pack, `POST /v1/batches` the batch request...)
  and what request lines and headers add;
- each new pack's size split into its header, blobs (the padded chunk
  envelopes, summed from the chunk locations the commit recorded), the zero
  gap up to its size bucket (the pack-level padding, FORMAT.md section 12),
  its sealed index and trailer.

Each run is a fresh stack and account, so a fresh chunker key: the chunks a
1 MiB overwrite touches differ from run to run (benchmarks/chunk_resync.py
gives their spread over many keys).
"""
from __future__ import annotations

import argparse
import json
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from benchmarks.peers import MIB, Sealsync, overwrite_middle, write_big
from benchmarks.stack import BenchStack


def _clients(stack: BenchStack) -> tuple[Any, Any]:
    info = stack.state
    kw = {"endpoint_url": info["aws_endpoint"], "region_name": info.get("region") or "us-east-1",
          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client("s3", **kw), boto3.client("dynamodb", **kw)


def _objects(s3: Any, bucket: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return out


def _blob_lengths(ddb: Any, table: str) -> dict[str, list[int]]:
    """pack id -> the padded envelope lengths of its blobs, from every chunk
    location (`L#{user}` items: pack, offset, length) in the table."""
    out: dict[str, list[int]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            if item.get("pk", {}).get("S", "").startswith("L#") and "pack" in item:
                out.setdefault(item["pack"]["S"], []).append(int(item["len"]["N"]))
    return out


def pack_parts(s3: Any, bucket: str, key: str, size: int, blobs: list[int]) -> dict[str, int]:
    """A stored pack's bytes by part: header, blobs, gap, index, trailer."""
    tail = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-9")["Body"].read()
    index_len, version, _magic = struct.unpack(">IB4s", tail)
    header, trailer = 5, 9
    return {"size": size, "version": version, "blobs": len(blobs), "header": header,
            "blob_bytes": sum(blobs), "index": index_len, "trailer": trailer,
            "gap": size - header - sum(blobs) - index_len - trailer}


def one_run(size_mib: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sealsync-resync-") as tmp:
        work = Path(tmp)
        with BenchStack(work) as stack:
            s3, ddb = _clients(stack)
            bucket, table = stack.state["bucket"], stack.state["table"]
            tool = Sealsync(stack, work)
            root = tool.folder("big")
            write_big(root / "big.bin", size_mib * MIB, seed)
            initial = tool.sync(root)
            before = _objects(s3, bucket)
            overwrite_middle(root / "big.bin", seed + 2)  # as peers.peer_runs does
            run = tool.sync(root)
            new = {k: v for k, v in _objects(s3, bucket).items() if before.get(k) != v}
            lengths = _blob_lengths(ddb, table)
            packs = [pack_parts(s3, bucket, k, v, lengths.get(k.rsplit("/", 1)[-1], []))
                     for k, v in sorted(new.items()) if k.startswith("packs/")]
            return {
                "resync_bytes_sent": run.bytes_sent,
                "s3": run.s3.as_dict(), "api": run.api.as_dict(),
                "s3_header_bytes": run.s3.bytes_sent - run.s3.body_bytes,
                "api_header_bytes": run.api.bytes_sent - run.api.body_bytes,
                "new_objects": new, "packs": packs,
                "pack_gap_bytes": sum(p["gap"] for p in packs),
                "blob_bytes": sum(p["blob_bytes"] for p in packs),
                "resync_s": round(run.seconds, 2), "initial_s": round(initial.seconds, 2),
            }


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--size-mib", type=int, default=1024)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--runs", type=int, default=1, help="fresh stacks (fresh chunker keys)")
    a.add_argument("--json", action="store_true")
    args = a.parse_args(argv)
    t = time.perf_counter()
    runs = [one_run(args.size_mib, args.seed + 10 * i) for i in range(args.runs)]
    sent = [r["resync_bytes_sent"] for r in runs]
    out = {"size_mib": args.size_mib, "runs": runs, "sent": sent,
           "sent_mean": round(statistics.mean(sent)), "over_2mib": sum(s > 2 * MIB for s in sent),
           "wall_s": round(time.perf_counter() - t, 1)}
    if args.json:
        print(json.dumps(out))
        return 0
    for r in runs:
        print(f"sent {r['resync_bytes_sent']:,} B ({r['resync_bytes_sent'] / MIB:.2f} MiB): "
              f"S3 {r['s3']['bytes_sent']:,} (headers {r['s3_header_bytes']:,}), "
              f"API {r['api']['bytes_sent']:,} (headers {r['api_header_bytes']:,})")
        for side in ("s3", "api"):
            for route, n in r[side]["body_bytes_by_route"].items():
                print(f"  {side:3} {route:<40} {n:>12,}")
        for p in r["packs"]:
            print(f"  pack v{p['version']}: {p['size']:,} = header {p['header']} + "
                  f"{p['blobs']} blobs {p['blob_bytes']:,} + gap {p['gap']:,} + "
                  f"index {p['index']:,} + trailer {p['trailer']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
