"""Client upload pipeline throughput on one core, against the bare AEAD.

    .venv/bin/python benchmarks/client_pipeline.py [--size-mib 256] [--runs 3]

Generates a random file, then times (best of --runs, pinned to one CPU):

* pipeline: encrypt_file (read from the page cache, keyed CDC, keyed
  BLAKE2b-256 chunk id, Padme padding, per-chunk key, AES-256-GCM), with the
  envelopes dropped as soon as they are made (no network);
* upload path: what Transfer.upload does without the network when the
  server lacks every chunk: a hash pass (chunk_spans), then each chunk read
  back with pread, hashed again and sealed into reused buffers (seal_span);
* hash pass alone: all an upload reads when the server already has every
  chunk (after a small edit, add only the changed chunks);
* bare AEAD: AES-256-GCM alone over the same chunk buffers, already in memory;
* the stages on their own (read+chunk, chunk ids, seal), to show where the
  time goes.

Prints MB/s (10**6 bytes/s) and the ratio pipeline / bare AEAD.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from sealsync_client import AccountKeys, crypto, encrypt_file  # noqa: E402
from sealsync_client.chunking import MAX_SIZE, Chunker  # noqa: E402
from sealsync_client.pipeline import chunk_spans, seal_span  # noqa: E402

USER = "0123456789abcdef0123456789abcdef"


def best(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings, in seconds (the least disturbed run)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def make_file(folder: str, size: int) -> str:
    path = os.path.join(folder, "bench.bin")
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: pipeline_mb_s, aead_limit_mb_s, pipeline_ratio")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    ring = AccountKeys(os.urandom(32)).root_keyring()
    size = args.size_mib << 20

    with tempfile.TemporaryDirectory() as folder:
        path = make_file(folder, size)
        data = Path(path).read_bytes()  # also warms the page cache for the file reads
        cuts = Chunker(ring.chunker).boundaries(data)
        views = [memoryview(data)[o:o + n] for o, n in cuts]

        def pipeline() -> None:
            for _ in encrypt_file(path, ring, USER):
                pass

        def hash_pass() -> None:
            chunk_spans(path, ring, Chunker(ring.chunker))

        buf = bytearray(crypto.padded_len(MAX_SIZE))
        out = bytearray(crypto.sealed_len(MAX_SIZE))

        def upload_path() -> None:
            spans = chunk_spans(path, ring, Chunker(ring.chunker))
            fd = os.open(path, os.O_RDONLY)
            try:
                for span in spans:
                    seal_span(ring, USER, fd, span, buf, out)
            finally:
                os.close(fd)

        def read_and_chunk() -> None:
            for _ in Chunker(ring.chunker).split(path):
                pass

        def chunk_ids() -> None:
            for view in views:
                crypto.chunk_hash(ring.chunk_id, view)

        scratch = bytearray(crypto.padded_len(MAX_SIZE))

        def seal() -> None:
            for view in views:
                crypto.seal(ring.content, crypto.KIND_CHUNK, view, b"\x00" * 64, scratch=scratch)

        aead = AESGCM(os.urandom(32))
        nonce, aad = bytes(12), b"\x00" * 64

        def bare_aead() -> None:
            for view in views:
                aead.encrypt(nonce, view, aad)

        rates = {name: size / best(args.runs, work) / 1e6 for name, work in [
            ("pipeline", pipeline), ("bare AEAD (AES-256-GCM)", bare_aead),
            ("upload path (hash, read back, seal)", upload_path),
            ("hash pass alone", hash_pass),
            ("  read + keyed CDC", read_and_chunk), ("  chunk ids (keyed BLAKE2b)", chunk_ids),
            ("  seal (pad + key + GCM)", seal)]}

    ratio = rates["pipeline"] / rates["bare AEAD (AES-256-GCM)"]
    if args.json:
        print(json.dumps({"pipeline_mb_s": round(rates["pipeline"], 1),
                          "aead_limit_mb_s": round(rates["bare AEAD (AES-256-GCM)"], 1),
                          "pipeline_ratio": round(ratio, 4), "size_mib": args.size_mib,
                          "runs": args.runs, "chunks": len(cuts),
                          "stages_mb_s": {k.strip(): round(v, 1) for k, v in rates.items()}}))
        return
    print(f"{args.size_mib} MiB random file, {len(cuts)} chunks "
          f"(mean {size / len(cuts) / 1024:.0f} KiB), one core, best of {args.runs}")
    for name, rate in rates.items():
        print(f"{name:36s} {rate:9.0f} MB/s")
    print(f"{'pipeline / bare AEAD':36s} {ratio:9.3f}  ({1 / ratio:.1f}x slower)")


if __name__ == "__main__":
    main()
