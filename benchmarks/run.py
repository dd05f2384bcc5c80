"""`make bench`: every figure of benchmarks/README.md in one run, side by side
with rclone and restic, written to benchmarks/results/latest.json and
latest.md, and the table printed at the end.

    .venv/bin/python -m benchmarks.run [--quick | --smoke] [--seed 1] [--small N] [--out DIR]

One local stack (moto + redis-server + API + event pump) serves every
measurement that needs one; sealsync's presigned URLs, rclone and restic all
reach moto through the same byte-counting proxy (benchmarks/proxy.py).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import commit, machine, moto_txn, peers, report
from benchmarks.stack import BenchStack

RESULTS = Path(__file__).resolve().parent / "results"
REQUIRED = ("pipeline_mb_s", "aead_limit_mb_s", "pipeline_ratio", "initial_1gib_s",
            "initial_small_s", "resync_1mib_bytes_sent", "s3_puts_per_small_file",
            "commit_ms", "commit_floor_ms", "polls_per_upload_mean", "push_ms",
            "contention", "cold_import_ms", "zip_mb", "client_rss_mb_1gib", "noop_small_s",
            "resume_resent_pct", "handler_invocations_per_1000_files",
            "ddb_write_requests_per_1000_files")


@dataclass(frozen=True)
class Profile:
    big_mib: int
    small_count: int
    pipeline_mib: int
    pipeline_runs: int
    commit_1kib: int
    commit_big: int
    floor_n: int
    contention_rounds: int
    polls_n: int
    client_1gib_mib: int
    txn_items: int


# The full run: 10,000 small files, 12-14 minutes on this 2-core machine
# (benchmarks/README.md, "The small-file sync").
FULL = Profile(1024, 10000, 1024, 2, 100, 20, 200, 20, 200, 1024, 2000)
QUICK = Profile(64, 200, 256, 1, 30, 5, 50, 5, 50, 64, 1000)
# Every step at toy sizes: proves the run works end to end (a test runs it),
# measures nothing worth reading.
SMOKE = Profile(4, 20, 8, 1, 3, 2, 5, 2, 5, 8, 50)


def versions() -> str:
    out = []
    for cmd in (["rclone", "version"], ["restic", "version"]):
        try:
            out.append(subprocess.run(cmd, capture_output=True, text=True,
                                      check=True).stdout.splitlines()[0].strip())
        except (OSError, subprocess.CalledProcessError, IndexError):
            out.append(f"{cmd[0]}: not found")
    return "; ".join(out)


class Runner:
    """Runs each step, timing it and logging to stderr; a failed step is
    recorded with its error (the key stays null) and the run goes on."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.steps: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    def log(self, msg: str) -> None:
        print(f"[bench {time.perf_counter() - self.t0:6.1f}s] {msg}", file=sys.stderr,
              flush=True)

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        self.log(f"{name} ...")
        t = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - recorded; the run goes on
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
            self.log(f"{name} FAILED: {self.errors[name]}")
            value = None
        self.steps[name] = round(time.perf_counter() - t, 1)
        self.log(f"{name} done in {self.steps[name]} s")
        return value


def measure(p: Profile, seed: int, run: Runner) -> dict[str, Any]:
    r: dict[str, Any] = {}
    notes: list[str] = []
    installed = run.step("install peers", peers.ensure_installed)
    if installed:
        notes.append(f"installed with apt-get: {', '.join(installed)}")
    pipe = run.step("client pipeline", lambda: machine.pipeline(p.pipeline_mib,
                                                               p.pipeline_runs)) or {}
    r.update({k: pipe.get(k) for k in ("pipeline_mb_s", "aead_limit_mb_s", "pipeline_ratio")})
    with tempfile.TemporaryDirectory(prefix="sealsync-bench-") as tmp:
        work = Path(tmp)
        with BenchStack(work) as stack:
            api = stack.state["api"]
            got = run.step("peers", lambda: peers.peer_runs(
                stack, work, p.big_mib, p.small_count, seed, run.log))
            if got:
                tools, roots = got["tools"], got["roots"]
                noop = run.step("no-op pass", lambda: peers.no_op_passes(
                    tools["sealsync"], tools["rclone"], roots["small"], roots["big"],
                    peers.NOOP_RUNS, run.log))
                if noop:
                    got["runs"].update(noop.pop("runs"))
                    r["noop_detail"] = noop
                r.update(report.peer_keys(got))
                r["peer_runs"] = {phase: {t: v.as_dict() for t, v in runs.items()}
                                  for phase, runs in got["runs"].items()}
            r["commit_ms"] = run.step("commit latency", lambda: commit.commit_ms(
                api, p.commit_1kib, p.commit_big, 256))
            floor = run.step("commit floor", lambda: commit.commit_floor_ms(
                stack.state, p.floor_n))
            r["commit_floor_ms"] = floor and floor["p50"]
            r["commit_floor_detail"] = floor
            r["contention"] = run.step("contention", lambda: commit.contention(
                api, 32, p.contention_rounds))
            push = run.step("push latency", lambda: machine.push_latency(stack.state_file,
                                                                         p.polls_n))
            if push:
                r["push_ms"] = push.get("push_ms")
                r["polls_per_upload_mean"] = push.get("polls_per_upload_push_off")
                r["polls_per_upload_push_on"] = push.get("polls_per_upload_push_on")
            if not push or r.get("polls_per_upload_mean") is None:
                polls = run.step("polls per upload", lambda: commit.polls_per_upload(
                    api, p.polls_n))
                r["polls_per_upload_mean"] = polls and polls["mean"]
                r["polls_detail"] = polls
            if not push or not r.get("push_ms"):
                why = ("benchmarks/push_latency.py is not in this tree (push is issue 4)"
                       if not (machine.BENCH / "push_latency.py").exists()
                       else run.errors.get("push latency", "push_latency.py gave no push_ms"))
                r["push_ms"] = {"p50": None, "p99": None, "reason": why}
    cold = run.step("cold import", machine.cold_import_ms)
    r["cold_import_ms"] = cold and cold["median"]
    z = run.step("deployment package", machine.zip_mb)
    r["zip_mb"] = z and z["mb"]
    r["zip_detail"] = z
    c1 = run.step("client_1gib.py", lambda: machine.client_1gib(p.client_1gib_mib, seed))
    r["client_rss_mb_1gib"] = c1 and c1["rss_mb"]
    r["client_1gib_detail"] = c1
    rs = run.step("resume after a kill at 50%",
                  lambda: machine.resume(p.client_1gib_mib, seed))
    r["resume_resent_pct"] = rs and rs["resume_resent_pct"]
    r["resume_detail"] = rs
    r["local_stack_txn_ms"] = run.step("moto transaction cost",
                                       lambda: moto_txn.measure(p.txn_items, 5))
    r["meta"] = {"notes": notes, "client_1gib_size_mib": p.client_1gib_mib}
    return r


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--quick", action="store_true", help="the < 3 minute profile")
    a.add_argument("--smoke", action="store_true",
                   help="toy sizes: check that every step runs (tests/benchmarks)")
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--small", type=int, default=None, help="small files (default: profile)")
    a.add_argument("--out", type=Path, default=RESULTS)
    args = a.parse_args(argv)
    prof = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.small:
        prof = Profile(**{**prof.__dict__, "small_count": args.small})
    run = Runner()
    r = measure(prof, args.seed, run)
    r["meta"].update({
        "quick": args.quick, "seed": args.seed, "profile": prof.__dict__,
        "big_mib": prof.big_mib, "small_count": prof.small_count,
        "wall_s": round(time.perf_counter() - run.t0, 1), "step_s": run.steps,
        "errors": run.errors, "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "peers": versions(), "python": sys.version.split()[0],
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
    missing = report.missing_keys(r, REQUIRED)
    r["meta"]["missing"] = missing
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    table = report.markdown(r)
    (args.out / "latest.md").write_text(table)
    print(table)
    if missing or run.errors:
        print(f"bench: missing {missing}; errors {run.errors}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
