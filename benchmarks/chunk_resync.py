"""What a 1 MiB overwrite costs to re-send, over many chunker keys (no network).

    .venv/bin/python benchmarks/chunk_resync.py [--keys 100] [--window-mib 12] [--tier 0]

client_1gib.py measures one account (one chunker key) per run, and the bytes
an edit re-sends depend on where that key's cuts fall. This draws --keys
random keys; for each it chunks a --window-mib window of random data with
the client's Chunker, overwrites 1 MiB near the middle, chunks again, and
sums the sealed sizes (crypto.sealed_len) of the chunks that are new. A
window is enough: cuts far from the edit are the same in both passes. The
manifest of a 1 GiB file (36 bytes a chunk, sealed) is added, with the chunk
count taken from the measured mean chunk size, as client_1gib.py counts it.

Prints the mean, median, 90th percentile and maximum in MiB, and the share
of keys over the 2 MiB target.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))

from sealsync_client.chunking import Chunker  # noqa: E402
from sealsync_client.crypto import sealed_len  # noqa: E402

MIB = 1 << 20
MANIFEST_HEAD = 64  # fixed fields + a short path and device name
REF = 36  # chunk id[32] + size u32


def chunk_digests(chunker: Chunker, data: bytes) -> list[tuple[int, bytes]]:
    return [(len(view), hashlib.blake2b(view, digest_size=16).digest())
            for _, view in chunker.split(io.BytesIO(data))]


def one_key(rng: random.Random, window: int, tier: int) -> tuple[int, float]:
    """(bytes of new chunk envelopes, mean chunk size) for one random key."""
    chunker = Chunker(rng.randbytes(32), tier)
    data = bytearray(rng.randbytes(window))
    before = chunk_digests(chunker, bytes(data))
    at = window // 2 + rng.randrange(-MIB, MIB)
    data[at:at + MIB] = rng.randbytes(MIB)
    after = chunk_digests(chunker, bytes(data))
    old = {d for _, d in before}
    return sum(sealed_len(n) for n, d in after if d not in old), window / len(before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--window-mib", type=int, default=12)
    parser.add_argument("--tier", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    runs = [one_key(rng, args.window_mib * MIB, args.tier) for _ in range(args.keys)]
    mean_chunk = statistics.mean(m for _, m in runs)
    count = round(1024 * MIB / mean_chunk)
    manifest = sealed_len(MANIFEST_HEAD + REF * count)
    totals = sorted((sent + manifest) / MIB for sent, _ in runs)
    over = sum(t > 2 for t in totals) / len(totals)
    print(f"tier {args.tier}: mean chunk {mean_chunk / 1024:.0f} KiB, a 1 GiB file has "
          f"~{count} chunks and a {manifest / 1024:.0f} KiB manifest; {args.keys} keys")
    print(f"re-sent after a 1 MiB overwrite (MiB): mean {statistics.mean(totals):.2f}  "
          f"median {statistics.median(totals):.2f}  p90 {totals[int(0.9 * len(totals))]:.2f}  "
          f"max {totals[-1]:.2f}  over 2 MiB: {over:.0%}")


if __name__ == "__main__":
    main()
