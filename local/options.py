"""The local stack's command line and environment: what `make dev` runs
with, and how the app is pointed at the local pieces before it is imported.
"""
from __future__ import annotations

import argparse
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"
REPO = Path(__file__).resolve().parent.parent
DEFAULT_STATE = REPO / ".sealsync-stack.json"
DEFAULT_DATA = REPO / ".sealsync-data"
NAMES = {"SEALSYNC_BUCKET": "sealsync-local", "SEALSYNC_TABLE": "sealsync-local",
         "SEALSYNC_QUEUE": "sealsync-commits",
         # Every local client signs up from 127.0.0.1: abuse limits x100 (docs/OPERATIONS.md).
         "SEALSYNC_RATE_SCALE": "100"}
# Credentials of a real AWS account must never reach the local stack.
AWS_VARS_TO_DROP = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class Options:
    api_port: int = 8000
    moto_port: int = 0
    redis_port: int = 0
    state_file: Path = DEFAULT_STATE
    token_secret: str | None = None
    fake_redis: bool = False
    pump_workers: int = 4
    duplicate_events: float = 0.0
    delay_events_s: float = 0.0
    sweep_interval_s: float = 60.0
    exit_with_parent: bool = False
    verbose: bool = False
    presign_endpoint: str | None = None
    data_dir: Path | None = DEFAULT_DATA  # None: --ephemeral, everything in memory
    snapshot_interval_s: float = 30.0
    handler_log: Path | None = None  # one JSON line per commit handler run (benchmarks)
    region: str = REGION
    regions: tuple[str, ...] = ()  # several: local/regions.py (this stack is the first)
    attach_moto: str | None = None  # one more region of a stack already running
    attach_redis: str | None = None


def parse_args(argv: list[str] | None = None, description: str | None = None) -> Options:
    p = argparse.ArgumentParser(prog="python -m local.stack", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--api-port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--moto-port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--redis-port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--state-file", type=Path, default=DEFAULT_STATE,
                   help="where the endpoints are written as JSON (default: %(default)s)")
    p.add_argument("--token-secret", default=None,
                   help="token signing secret (default: $SEALSYNC_TOKEN_SECRET, "
                        "else random per run)")
    p.add_argument("--fake-redis", action="store_true",
                   help="use the embedded fakeredis even if redis-server is installed")
    p.add_argument("--pump-workers", type=int, default=4,
                   help="concurrent event deliveries, like concurrent Lambdas")
    p.add_argument("--duplicate-events", type=float, default=0.0, metavar="P",
                   help="re-deliver each commit event once more with probability P")
    p.add_argument("--delay-events", type=float, default=0.0, metavar="SECONDS",
                   help="hold each event batch back up to SECONDS (reorders them)")
    p.add_argument("--sweep-interval", type=float, default=60.0, metavar="SECONDS")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="debug logs of the pump and the commit (timings per event batch)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="stop when the process that started us dies (tests use it, so "
                        "a killed test run leaks no stack)")
    p.add_argument("--presign-endpoint", default=None, metavar="URL",
                   help="point presigned S3 URLs at URL instead of moto (e.g. a byte-"
                        "counting proxy in front of it: benchmarks/proxy.py)")
    p.add_argument("--data-dir", type=Path, default=DEFAULT_DATA,
                   help="keep S3 objects and DynamoDB items here across restarts "
                        "(local/persist.py; default: %(default)s)")
    p.add_argument("--ephemeral", action="store_true",
                   help="keep nothing: everything in memory, gone when the stack stops "
                        "(tests and benchmarks use this)")
    p.add_argument("--snapshot-interval", type=float, default=30.0, metavar="SECONDS",
                   help="how often the data is snapshotted while running (default: "
                        "%(default)s; also on stop)")
    p.add_argument("--handler-log", type=Path, default=None, metavar="FILE",
                   help="append one JSON line per commit handler invocation to FILE: "
                        "its duration and message count, what Lambda would bill "
                        "(benchmarks/peers.py reads it)")
    p.add_argument("--regions", default="", metavar="A,B",
                   help="run one API per region (moto is multi-region): A is this stack's, "
                        "each other one a subprocess (local/regions.py); keeps nothing")
    p.add_argument("--region", default=REGION, help=argparse.SUPPRESS)
    p.add_argument("--attach-moto", default=None, help=argparse.SUPPRESS)
    p.add_argument("--attach-redis", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not 0.0 <= a.duplicate_events <= 1.0:
        p.error("--duplicate-events must be between 0 and 1")
    regions = tuple(r.strip() for r in a.regions.split(",") if r.strip())
    if regions and len(set(regions)) != len(regions):
        p.error("--regions lists a region twice")
    if len(regions) > 1 and not a.ephemeral:
        a.ephemeral = True  # snapshots know one region: a multi-region stack keeps nothing
    return Options(api_port=a.api_port, moto_port=a.moto_port, redis_port=a.redis_port,
                   state_file=a.state_file, token_secret=a.token_secret,
                   fake_redis=a.fake_redis, pump_workers=max(1, a.pump_workers),
                   duplicate_events=a.duplicate_events, delay_events_s=a.delay_events,
                   sweep_interval_s=a.sweep_interval, exit_with_parent=a.exit_with_parent,
                   verbose=a.verbose, presign_endpoint=a.presign_endpoint,
                   data_dir=None if a.ephemeral else a.data_dir,
                   snapshot_interval_s=max(1.0, a.snapshot_interval),
                   handler_log=a.handler_log,
                   region=regions[0] if regions else a.region,
                   regions=regions if len(regions) > 1 else (),
                   attach_moto=a.attach_moto, attach_redis=a.attach_redis)


def configure_env(opts: Options, aws_endpoint: str, redis_url: str) -> dict[str, str]:
    """Point the app at the local pieces. Runs BEFORE app.py is imported,
    which reads the bucket and queue names at import time."""
    for name in AWS_VARS_TO_DROP:
        os.environ.pop(name, None)
    secret = (opts.token_secret or os.environ.get("SEALSYNC_TOKEN_SECRET")
              or secrets.token_urlsafe(48))
    env = {name: os.environ.get(name) or default for name, default in NAMES.items()}
    env.update({
        "SEALSYNC_TOKEN_SECRET": secret,
        "SEALSYNC_AWS_ENDPOINT": aws_endpoint,
        "SEALSYNC_REDIS_URL": redis_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": opts.region,
        "AWS_REGION": opts.region,
    })
    os.environ.update(env)
    return env
