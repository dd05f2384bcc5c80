"""Where the small-file rate goes: one long sync against several short ones.

    .venv/bin/python -m benchmarks.small_rate [--files 1000] [--batches 4]

On one local stack and one account, syncs --batches folders of --files new
small files each, one `sealsync sync` per batch, and prints each batch's
rate. A rate that holds across batches while one big sync slows down means
the cost grows with the run, not with what the stack stores (see
benchmarks/README.md, "The full run's small-file count"). Each batch also
prints the commit handler's time over its pass (the local pump's log, as
`make bench` reports it in `batch_handler_ms`): one batch of up to 1,000
files is one handler run.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.peers import Sealsync, batch_handler_ms, write_small
from benchmarks.stack import BenchStack


def batch_rates(files: int, batches: int, work: Path) -> list[float]:
    """Files per second of each batch, in order."""
    rates = []
    with BenchStack(work) as stack:
        sealsync = Sealsync(stack, work)
        root = sealsync.folder("small")
        for b in range(batches):
            batch = root / f"batch{b}"
            batch.mkdir()
            write_small(batch, files, seed=b)
            since = time.time()
            before = stack.calls_before(since)
            rates.append(files / sealsync.sync(root).seconds)
            handler = batch_handler_ms(stack.handler_runs(since, time.time()), files, before)
            print(f"batch {b}: {files} new files (stored {files * (b + 1)}): "
                  f"{rates[-1]:.1f} files/s; commit handler {handler}", flush=True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", type=int, default=1000)
    p.add_argument("--batches", type=int, default=4)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="sealsync-rate-") as tmp:
        batch_rates(args.files, args.batches, Path(tmp))


if __name__ == "__main__":
    main()
