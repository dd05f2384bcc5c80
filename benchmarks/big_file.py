"""Only the big-file figure of `make bench`: the initial sync of one seeded
file by sealsync, rclone and restic, side by side on one local stack, each
through the same counting proxy (benchmarks/peers.py), as ratios.

    .venv/bin/python -m benchmarks.big_file [--size-mib 1024] [--seed 1]
        [--tools sealsync,rclone,restic] [--rounds 1] [--json]

Each round gives every tool a fresh folder (sealsync: a new account) and
times its initial sync of the same file, the tools in turn, so that the
machine's load falls on all of them alike. The load average is printed:
this machine is shared, so read the ratios of one run, not the seconds.
`make bench` runs the same commands (peers.peer_runs); this runs only the
part that the 1 GiB work is about, in about a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import peers
from benchmarks.stack import BenchStack


def run(size_mib: int, seed: int, tools: list[str], rounds: int) -> dict[str, Any]:
    peers.ensure_installed(tuple(t for t in tools if t != "sealsync"))
    with tempfile.TemporaryDirectory(prefix="sealsync-big-") as tmp:
        work = Path(tmp)
        with BenchStack(work) as stack:
            sealsync = peers.Sealsync(stack, work)
            made: dict[str, Any] = {"sealsync": sealsync, "rclone": peers.Rclone(stack, work),
                                    "restic": peers.Restic(stack, work)}
            corpus = work / "corpus.bin"
            peers.write_big(corpus, size_mib * peers.MIB, seed)
            out: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
            loads = [os.getloadavg()[0]]
            for n in range(rounds):
                root = sealsync.folder(f"big{n}")  # the peers sync the same folder
                shutil.copyfile(corpus, root / "big.bin")
                for name in tools:
                    r = made[name].sync(root)
                    out[name].append(r.as_dict())
                    loads.append(os.getloadavg()[0])
                    print(f"round {n + 1}: {name} {r.seconds:.2f} s, "
                          f"peak RSS {r.rss_mb:.1f} MiB, {r.s3.methods} S3 requests",
                          file=sys.stderr, flush=True)
    best = {t: min(r["s"] for r in runs) for t, runs in out.items()}
    ratios = {f"sealsync/{t}": round(best["sealsync"] / best[t], 3)
              for t in tools if t != "sealsync" and "sealsync" in best}
    return {"size_mib": size_mib, "seed": seed, "rounds": rounds, "best_s": best,
            "ratios": ratios, "runs": out,
            "loadavg_1m": [round(x, 2) for x in loads],
            "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--size-mib", type=int, default=1024)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--tools", default=",".join(peers.TOOLS))
    a.add_argument("--rounds", type=int, default=1)
    a.add_argument("--json", action="store_true")
    args = a.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    if unknown := set(tools) - set(peers.TOOLS):
        a.error(f"unknown tools: {sorted(unknown)}")
    r = run(args.size_mib, args.seed, tools, args.rounds)
    if args.json:
        print(json.dumps(r, sort_keys=True))
        return 0
    for t, s in r["best_s"].items():
        print(f"{t:<10} {s:8.2f} s  (best of {args.rounds})")
    for k, v in r["ratios"].items():
        print(f"{k:<18} {v:.2f}x")
    print(f"load average (1 min) over the run: {r['loadavg_1m']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
