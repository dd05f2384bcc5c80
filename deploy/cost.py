"""`make cost`: what a million commits cost on AWS, from the measured handler
time (`make bench` -> benchmarks/results/latest.json), the AWS calls one
commit makes (counted by tests/deploy/test_call_counts.py, which fails when
the code's calls drift from the figures below) and deploy/prices.json.

    python -m deploy.cost [--results FILE] [--stage prod] [--prices FILE] [--json]

One commit here is the whole life of a new small file version: POST
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

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
PRICES = ROOT / "deploy" / "prices.json"

# Calls one commit makes, server side (the client's own PUTs come from the
# bench: s3_puts_per_small_file). Kept equal to what the code does by
# tests/deploy/test_call_counts.py.
S3_CALLS = {"HeadObject": 3, "CopyObject": 1, "DeleteObject": 1}
DYNAMODB_CALLS = {"GetItem": 4, "PutItem": 1, "BatchGetItem": 2, "TransactWriteItems": 1,
                  "Query": 1,  # push: the user's connections and mobile endpoints
                  "BatchWriteItem": 1}
DYNAMODB_UNITS = {"rru": 6.0, "wru": 12.0}  # items <= 1 KiB written, <= 4 KiB read
# SET NX PX + EVAL release for the file lock and for the feed lock, GET + SET
# of the feed-head hint (which saves the counter's GetItem once a user has
# committed), RPUSH + EXPIRE for two topics.
REDIS_COMMANDS = 10
# The waiting long poll adds BLPOP and its relay wake (RPUSH + EXPIRE).
REDIS_POLL_COMMANDS = 3
API_CALLS = 2  # POST /v1/uploads, GET /v1/uploads/{id}?wait=20
SQS_REQUESTS = 3  # S3's SendMessage, the poller's ReceiveMessage and DeleteMessage
API_HANDLER_MS = 20.0  # assumption: a presign and two DynamoDB calls, warm
AUTHORIZER_MS = 5.0  # assumption: one HMAC check, warm


def capacity_units(operation: str, params: dict[str, Any]) -> tuple[float, float]:
    """(read, write) request units one DynamoDB call consumes, for items
    under 4 KiB read and 1 KiB written (Sealsync's items are ids and counters;
    an upload record grows 32 bytes per chunk)."""
    if operation == "GetItem":
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation == "Query":
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation == "BatchGetItem":
        keys = sum(len(t["Keys"]) for t in params["RequestItems"].values())
        return 0.5 * keys, 0.0
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 0.0, 1.0
    if operation == "BatchWriteItem":
        return 0.0, float(sum(len(v) for v in params["RequestItems"].values()))
    if operation == "TransactWriteItems":
        return 0.0, 2.0 * len(params["TransactItems"])
    raise ValueError(f"no capacity rule for {operation}")


class ResultsError(RuntimeError):
    """The bench results are missing or incomplete; the message says how to fix it."""


@dataclass(frozen=True)
class Measured:
    commit_handler_ms: float
    commit_latency_ms: float
    client_puts: float
    source: str


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
        puts = _ours(data["s3_puts_per_small_file"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultsError(f"{path} lacks commit_ms.p50_1kib or s3_puts_per_small_file "
                           f"({type(exc).__name__}: {exc})") from exc
    return Measured(handler, latency, puts, str(path))


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
    s3_gets = S3_CALLS["HeadObject"]
    s3_puts = S3_CALLS["CopyObject"] + m.client_puts
    rows = [
        ("Lambda requests", invocations, "lambda_request"),
        ("Lambda GB-seconds", gb_s, "lambda_gb_s_x86"),
        ("API Gateway REST calls", API_CALLS, "rest_api_request"),
        ("DynamoDB write units", DYNAMODB_UNITS["wru"], "dynamodb_wru"),
        ("DynamoDB read units", DYNAMODB_UNITS["rru"], "dynamodb_rru"),
        ("S3 PUT/COPY (client + handler)", s3_puts, "s3_put"),
        ("S3 HEAD", s3_gets, "s3_get"),
        ("SQS requests", SQS_REQUESTS, "sqs_request"),
        ("Redis ECPUs", REDIS_COMMANDS + REDIS_POLL_COMMANDS, "redis_ecpu"),
    ]
    return [{"item": name, "per_commit": qty, "price_key": key,
             "usd_per_million": qty * p[key] * 1_000_000} for name, qty, key in rows]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--prices", type=Path, default=PRICES)
    ap.add_argument("--stage", default="prod", help="memory size comes from this stage")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        m = load_results(args.results)
    except ResultsError as exc:
        print(f"make cost: {exc}", file=sys.stderr)
        return 2
    prices = json.loads(args.prices.read_text())
    mem = memory_mb(args.stage)
    rows = lines(m, prices, mem)
    total = sum(r["usd_per_million"] for r in rows)
    if args.json:
        print(json.dumps({"usd_per_million_commits": round(total, 4), "rows": rows,
                          "memory_mb": mem, "results": m.source,
                          "prices_as_of": prices["as_of"], "region": prices["region"]},
                         indent=2))
        return 0
    print(f"Cost of one million commits ({prices['region']}, prices as of "
          f"{prices['as_of']}, {mem} MB functions, results {m.source}):")
    print(f"  commit handler {m.commit_handler_ms:.1f} ms, commit latency "
          f"{m.commit_latency_ms:.1f} ms, {m.client_puts:g} client PUTs per file")
    for r in rows:
        print(f"  {r['item']:32} {r['per_commit']:>9.3f} /commit   "
              f"${r['usd_per_million']:>9.2f}")
    print(f"  {'total':32} {'':>9} {'':8}   ${total:>9.2f} per million commits")
    print("  (the single-file commit path, one commit per file version; the desktop\n"
          "   client now sends batches, which this model does not price yet)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
