"""`make cost`: what a million file versions cost on AWS, from the measured
handler time (`make bench` -> benchmarks/results/latest.json), the AWS calls
the code makes (deploy/cost_calls.py, held equal to the code by
tests/deploy/test_call_counts.py) and deploy/prices.json.

    python -m deploy.cost [--results FILE] [--stage prod] [--prices FILE]
                          [--batch N] [--json]

Two models side by side. **Batches** (what the desktop client sends): N file
versions in one POST /v1/batches, one bundle PUT, one S3 event, one handler
run, one long poll (GET /v1/batches/{id}?wait=N). **Single commits** (POST
/v1/uploads, still served as a batch of one: docs/DESIGN.md "One
protocol"): one of each per file version.

One single commit is the whole life of a new small file version: POST
/v1/uploads, the client's PUTs, the S3 event through SQS, the commit
handler, and one long poll for the verdict. Conservative where it must
guess: every API call pays an authorizer invocation (API Gateway caches it
for 60 s per token, so the real count is lower) and every commit message is
its own Lambda invocation (SQS batches up to 10 under load).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cost_calls import (
    API_CALLS,
    BATCH_API_CALLS,
    BATCH_S3_CALLS,
    BATCH_SQS_REQUESTS,
    DYNAMODB_UNITS,
    REDIS_COMMANDS,
    REDIS_POLL_COMMANDS,
    S3_CALLS,
    SQS_REQUESTS,
    batch_dynamodb_calls,
    batch_groups,
    batch_record_units,
    batch_redis_commands,
    batch_units,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
PRICES = ROOT / "deploy" / "prices.json"

API_HANDLER_MS = 20.0  # assumption: a presign and two DynamoDB calls, warm
AUTHORIZER_MS = 5.0  # assumption: one HMAC check, warm
CLIENT_BATCH = 1000  # the desktop client's batch size (outbox.MAX_ENTRIES), as in the bench


class ResultsError(RuntimeError):
    """The bench results are missing or incomplete; the message says how to fix it."""


@dataclass(frozen=True)
class Measured:
    commit_handler_ms: float
    commit_latency_ms: float
    client_puts: float  # per file, single path: the manifest + chunk PUTs
    chunk_puts: float  # per file: chunk PUTs only (small files ride inline: 0)
    source: str
    # the commit handler's ms per 1,000 files, measured on the bench's
    # small-file sync (`batch_handler_ms`); None in older results
    batch_handler_per_1000_ms: float | None = None


def _ours(value: Any) -> float:
    """A figure `make bench` reports per tool ({"sealsync": x, "rclone": ...})
    or, in older results, as one number."""
    return float(value["sealsync"] if isinstance(value, dict) else value)


def load_results(path: Path) -> Measured:
    if not path.exists():
        raise ResultsError(f"no bench results at {path}: run `make bench` first, "
                           "or pass --results FILE")
    try:
        data = json.loads(path.read_text())
        latency = float(data["commit_ms"]["p50_1kib"])
        handler = float(data.get("commit_floor_ms") or latency)
        raw = data["s3_puts_per_small_file"]
        puts = _ours(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{path} lacks commit_ms.p50_1kib or s3_puts_per_small_file "
                           f"({type(exc).__name__}: {exc})") from exc
    # Per-tool results come from the batching client: one bundle PUT per
    # CLIENT_BATCH files plus chunk PUTs. Older, flat ones from the single
    # path: one manifest PUT per file plus chunk PUTs.
    chunks = max(0.0, puts - (1 / CLIENT_BATCH if isinstance(raw, dict) else 1.0))
    detail = data.get("batch_handler_ms")
    measured = detail.get("per_1000_files") if isinstance(detail, dict) else None
    batch_ms = float(measured) if isinstance(measured, (int, float)) \
        and not isinstance(measured, bool) and measured > 0 else None
    return Measured(handler, latency, 1.0 + chunks, chunks, str(path), batch_ms)


def batch_handler_ms(m: Measured, n: int) -> float:
    """The handler time of one batch of n: measured when the results have
    it (scaled by n / 1,000), else the single commit's x transaction groups."""
    if m.batch_handler_per_1000_ms is not None:
        return m.batch_handler_per_1000_ms * n / 1000
    return m.commit_handler_ms * batch_groups(n)


def memory_mb(stage: str) -> int:
    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(cfg["stages"][stage].get("lambda_memory_size",
                                        cfg.get("lambda_memory_size", 128)))


def lines(m: Measured, prices: dict[str, Any], mem_mb: int) -> list[dict[str, Any]]:
    """One row per priced item: quantity per commit, unit, $ per million commits."""
    p = {k: v["usd"] / v["per"] for k, v in prices["prices"].items()}
    gb = mem_mb / 1024
    invocations = API_CALLS * 2 + 1  # API handlers, their authorizer, the commit handler
    # The long poll is billed while it waits: about the commit latency.
    gb_s = gb * (m.commit_handler_ms + API_HANDLER_MS + m.commit_latency_ms
                 + API_CALLS * AUTHORIZER_MS) / 1000
    s3_gets = S3_CALLS["HeadObject"] + S3_CALLS["GetObject"]
    s3_puts = S3_CALLS["CopyObject"] + m.client_puts
    rows = [
        ("Lambda requests", invocations, "lambda_request"),
        ("Lambda GB-seconds", gb_s, "lambda_gb_s_x86"),
        ("API Gateway REST calls", API_CALLS, "rest_api_request"),
        ("DynamoDB write units", DYNAMODB_UNITS["wru"], "dynamodb_wru"),
        ("DynamoDB read units", DYNAMODB_UNITS["rru"], "dynamodb_rru"),
        ("S3 PUT/COPY (client + handler)", s3_puts, "s3_put"),
        ("S3 HEAD/GET", s3_gets, "s3_get"),
        ("SQS requests", SQS_REQUESTS, "sqs_request"),
        ("Redis ECPUs", REDIS_COMMANDS + REDIS_POLL_COMMANDS, "redis_ecpu"),
    ]
    return [{"item": name, "per_commit": qty, "price_key": key,
             "usd_per_million": qty * p[key] * 1_000_000} for name, qty, key in rows]


BATCH_ASSUMPTIONS = (
    "batch handler time: {handler}",
    "the batch's long poll is billed for (commit latency - commit handler time) "
    "+ the batch handler time",
    "POST /v1/batches handler: {api_ms:g} ms like POST /v1/uploads (assumption, warm)",
    "every file is new and small (inline, no chunks): its chunk PUTs come from the "
    "bench ({chunks:g} per file)",
    "one authorizer invocation per API call (API Gateway caches it 60 s per token)",
    "the batch's entries item and its Queries are priced at their measured sizes",
)


def batch_lines(m: Measured, prices: dict[str, Any], mem_mb: int,
                n: int) -> list[dict[str, Any]]:
    """One row per priced item: quantity per batch of n, per file, and $ per
    million file versions."""
    p = {k: v["usd"] / v["per"] for k, v in prices["prices"].items()}
    gb = mem_mb / 1024
    handler_ms = batch_handler_ms(m, n)
    poll_ms = max(0.0, m.commit_latency_ms - m.commit_handler_ms) + handler_ms
    gb_s = gb * (handler_ms + API_HANDLER_MS + poll_ms + BATCH_API_CALLS * AUTHORIZER_MS) / 1000
    units, record = batch_units(n), batch_record_units(n)
    rows = [
        ("Lambda requests", BATCH_API_CALLS * 2 + 1, "lambda_request"),
        ("Lambda GB-seconds", gb_s, "lambda_gb_s_x86"),
        ("API Gateway REST calls", BATCH_API_CALLS, "rest_api_request"),
        ("DynamoDB write units", units["wru"] + record["wru"], "dynamodb_wru"),
        ("DynamoDB read units", units["rru"] + record["rru"], "dynamodb_rru"),
        ("S3 PUT/COPY (client + handler)",
         1 + m.chunk_puts * n + BATCH_S3_CALLS["CopyObject"], "s3_put"),
        ("S3 HEAD/GET", BATCH_S3_CALLS["HeadObject"] + BATCH_S3_CALLS["GetObject"], "s3_get"),
        ("SQS requests", BATCH_SQS_REQUESTS, "sqs_request"),
        ("Redis ECPUs", batch_redis_commands(n) + REDIS_POLL_COMMANDS, "redis_ecpu"),
    ]
    return [{"item": name, "per_batch": qty, "per_file": qty / n, "price_key": key,
             "usd_per_million": qty / n * p[key] * 1_000_000} for name, qty, key in rows]


def batch_counts(n: int) -> dict[str, Any]:
    """The counts per batch of n the issue asks for, and per 1,000 files."""
    record = batch_record_units(n)
    wru = batch_units(n)["wru"] + record["wru"]
    per_k = 1000 / n
    return {"handler_invocations_per_1000_files": per_k,
            "lambda_invocations_per_1000_files": per_k * (BATCH_API_CALLS * 2 + 1),
            "dynamodb_write_requests_per_1000_files":
                per_k * sum(v for k, v in batch_dynamodb_calls(n).items()
                            if k in ("PutItem", "UpdateItem", "TransactWriteItems",
                                     "BatchWriteItem", "DeleteItem")),
            "dynamodb_wru_per_1000_files": per_k * wru,
            "dynamodb_calls_per_batch": batch_dynamodb_calls(n)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--prices", type=Path, default=PRICES)
    ap.add_argument("--stage", default="prod", help="memory size comes from this stage")
    ap.add_argument("--batch", type=int, default=CLIENT_BATCH,
                    help="file versions per batch (1..1000; the client sends 1000)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not 1 <= args.batch <= CLIENT_BATCH:
        ap.error("--batch must be 1..1000 (the server's limit)")
    try:
        m = load_results(args.results)
    except ResultsError as exc:
        print(f"make cost: {exc}", file=sys.stderr)
        return 2
    prices = json.loads(args.prices.read_text())
    mem = memory_mb(args.stage)
    rows = lines(m, prices, mem)
    total = sum(r["usd_per_million"] for r in rows)
    n = args.batch
    brows = batch_lines(m, prices, mem, n)
    btotal = sum(r["usd_per_million"] for r in brows)
    handler = (f"measured by `make bench`, {m.batch_handler_per_1000_ms:g} ms per 1,000 "
               "files on the local stack (moto's DynamoDB: an upper bound)"
               if m.batch_handler_per_1000_ms is not None else
               "single commit handler time x transaction groups (ceil(N/47)): no measured "
               "figure in these results")
    assumptions = [a.format(api_ms=API_HANDLER_MS, chunks=m.chunk_puts, handler=handler)
                   for a in BATCH_ASSUMPTIONS]
    from .cost_account import print_report, report

    back_office = report(prices, btotal)
    if args.json:
        print(json.dumps({"usd_per_million_commits": round(total, 4), "rows": rows,
                          "back_office": back_office,
                          "batch": {"size": n,
                                    "usd_per_million_file_versions": round(btotal, 4),
                                    "rows": brows, **batch_counts(n),
                                    "assumptions": assumptions},
                          "memory_mb": mem, "results": m.source,
                          "prices_as_of": prices["as_of"], "region": prices["region"]},
                         indent=2))
        return 0
    print(f"Cost of one million file versions ({prices['region']}, prices as of "
          f"{prices['as_of']}, {mem} MB functions, results {m.source}):")
    print(f"  commit handler {m.commit_handler_ms:.1f} ms, commit latency "
          f"{m.commit_latency_ms:.1f} ms, {m.chunk_puts:g} chunk PUTs per small file, "
          f"batch handler {batch_handler_ms(m, n):,.0f} ms per batch of {n:,}")
    print(f"\nBatches of {n:,} (the desktop client):")
    for r in brows:
        print(f"  {r['item']:32} {r['per_batch']:>10.3f} /batch {r['per_file']:>9.4f} /file"
              f"   ${r['usd_per_million']:>9.2f}")
    print(f"  {'total':32} {'':>10} {'':6} {'':>9} {'':5}   ${btotal:>9.2f} "
          "per million file versions")
    c = batch_counts(n)
    print(f"  per 1,000 files: {c['handler_invocations_per_1000_files']:g} handler runs, "
          f"{c['lambda_invocations_per_1000_files']:g} Lambda invocations, "
          f"{c['dynamodb_write_requests_per_1000_files']:g} DynamoDB write requests "
          f"({c['dynamodb_wru_per_1000_files']:,.0f} WRU)")
    print("  assumptions:")
    for a in assumptions:
        print(f"    - {a}")
    print("\nSingle commits (POST /v1/uploads, one per file version):")
    for r in rows:
        print(f"  {r['item']:32} {r['per_commit']:>9.3f} /commit   "
              f"${r['usd_per_million']:>9.2f}")
    print(f"  {'total':32} {'':>9} {'':8}   ${total:>9.2f} per million commits")
    print_report(back_office)
    return 0


if __name__ == "__main__":
    sys.exit(main())
