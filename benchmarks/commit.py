"""The truth system on the local stack: commit latency, its floor, contention,
and polls per batch (push off). Spoken over the wire protocol with the bare
client in local/apiclient.py (no crypto: blobs stand in for ciphertext), in
batches (v2, what the desktop client sends): a single version is a batch
of one.

- commit_ms: from the bundle PUT returning (the staging object exists) to
  the verdict seen through one long poll, GET /v1/batches/{id}?wait=20.
- commit_floor_ms: the bare Redis lock round trip (a batch's: one script)
  + the commit's DynamoDB transaction (feed head read + one group's fenced
  TransactWriteItems), on the same stack, run alone from this process.
- contention: 32 devices of one user race on one file each round, each a
  batch of one; the floor runs the same loop with each device on its own file.
- polls_per_upload: batches of POLL_BATCH files; long polls per batch.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.commit_latency import percentile
from local.apiclient import Client, Device, new_file_id
from local.apiclient import bundle as apiclient_bundle

WAIT_S = 20
MIB = 1 << 20


def pcts(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50": round(percentile(s, 50), 2), "p99": round(percentile(s, 99), 2),
            "n": len(s)}


def one_commit(api: Client, dev: Device, file_id: str, base: int, manifest: bytes,
               chunks: list[bytes]) -> tuple[float, dict[str, Any], int]:
    """Upload one version as a batch of one: (ms from bundle PUT to verdict,
    its verdict, polls)."""
    batch_id = api.send_batch(dev, [(file_id, base, manifest, chunks)])
    t0 = time.perf_counter()
    verdicts, polls = api.batch_decided(dev, batch_id, WAIT_S)
    return (time.perf_counter() - t0) * 1000, verdicts[0], polls


def commit_ms(api_url: str, n_small: int, n_big: int, big_mib: int) -> dict[str, Any]:
    """1 KiB versions (successive revisions of one file), and versions of a
    big_mib file in 1 MiB chunks (a new file each; its chunks are uploaded by
    the first, then already stored, as for a copy or re-commit of the file)."""
    api = Client(api_url)
    dev = api.signup()
    file_id, head, small = new_file_id(), 0, []
    for i in range(n_small + 2):  # two warm-up commits
        ms, r, _ = one_commit(api, dev, file_id, head, secrets.token_bytes(1024), [])
        assert r["status"] == "accepted", r
        head = int(r["revision"])
        if i >= 2:
            small.append(ms)
    chunks = [os.urandom(MIB) for _ in range(big_mib)]
    manifest = secrets.token_bytes(64 * big_mib + 256)  # ~ ids + sizes per chunk
    big, first = [], None
    for _ in range(n_big + 1):
        ms, r, _ = one_commit(api, dev, new_file_id(), 0, manifest, chunks)
        assert r["status"] == "accepted", r
        if first is None:
            first = ms
        else:
            big.append(ms)
    s, b = pcts(small), pcts(big)
    return {"p50_1kib": s["p50"], "p99_1kib": s["p99"], "p50_256mib": b["p50"],
            "p99_256mib": b["p99"], "n_1kib": s["n"], "n_256mib": b["n"],
            "big_mib": big_mib, "first_big_commit_ms": round(first or 0.0, 2)}


def commit_floor_ms(state: dict[str, Any], n: int) -> dict[str, Any]:
    """Lock + fenced transaction + unlock against the stack's own Redis and
    moto, with nothing else running."""
    from chalicelib.config import Runtime, Settings
    from chalicelib.core.batch import BatchRecord, Entry

    rt = Runtime(Settings(bucket=state["bucket"], table=state["table"],
                          redis_url=state["redis_url"], token_secret=b"x" * 32,
                          region=state.get("region", "us-east-1"),
                          aws_endpoint=state["aws_endpoint"]))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    user, file_id, samples = secrets.token_hex(16), secrets.token_hex(16), []
    for i in range(n + 3):
        now = int(time.time())
        rec = BatchRecord(secrets.token_hex(16), user, "d",
                          (Entry(file_id, i, 1024, False, (), 1024),), "pending", now)
        rt.batches.create(rec, now + 3600)
        t0 = time.perf_counter()
        with rt.locks.held_all([rt.locks.key(user, file_id)]):
            last = rt.meta.feed_head(user)
            rt.batches.commit_group(rec, {0: i + 1}, {0: last + 1}, last,
                                    f"manifests/{user}/batch/{rec.batch_id}", [0], now)
        if i >= 3:
            samples.append((time.perf_counter() - t0) * 1000)
    return {"p50": pcts(samples)["p50"], "p99": pcts(samples)["p99"], "n": n}


def _rounds(api_url: str, devices: int, rounds: int, shared: bool) -> dict[str, Any]:
    """`devices` threads upload together each round (a barrier starts them),
    on one file (shared) or one file each. Decisions/s over the rounds."""
    apis = [Client(api_url) for _ in range(devices)]
    first = apis[0].signup()
    devs = [first] + [apis[i].add_device(first.user_id, first.auth_key, first.account_seed)
                      for i in range(1, devices)]
    files = [new_file_id()] * devices if shared else [new_file_id() for _ in range(devices)]
    heads = [0] * devices
    winners: list[int] = []
    busy = 0.0
    barrier = threading.Barrier(devices)

    def race(i: int) -> dict[str, Any]:
        api, dev = apis[i], devs[i]
        manifest = secrets.token_bytes(1024)
        whole = apiclient_bundle(dev, [(files[i], heads[i], manifest, ())])
        ticket = api.create_batch(dev, [(files[i], heads[i], len(manifest), ())], whole)
        barrier.wait()
        api.put_blob(ticket["bundle_url"], whole, ticket.get("bundle_headers"))
        return api.batch_decided(dev, ticket["batch_id"], WAIT_S)[0][0]

    with ThreadPoolExecutor(devices) as pool:
        for _ in range(rounds):
            t0 = time.perf_counter()
            results = list(pool.map(race, range(devices)))
            busy += time.perf_counter() - t0
            accepted = [r for r in results if r["status"] == "accepted"]
            winners.append(len(accepted))
            if shared:
                rev = int(accepted[0]["revision"]) if accepted else heads[0]
                heads = [rev] * devices
                losers = [r for r in results if r["status"] == "conflict"]
                assert all(int(r["winner_revision"]) == rev for r in losers), results
            else:
                heads = [int(r["revision"]) for r in results]
    return {"decided_per_s": round(devices * rounds / busy, 2),
            "max_winners": max(winners), "min_winners": min(winners)}


def contention(api_url: str, devices: int, rounds: int) -> dict[str, Any]:
    raced = _rounds(api_url, devices, rounds, shared=True)
    if raced["max_winners"] != 1 or raced["min_winners"] != 1:
        raise AssertionError(f"a round had {raced['min_winners']}..{raced['max_winners']} "
                             "winners: invariant 1 (no lost update) is broken")
    alone = _rounds(api_url, devices, rounds, shared=False)
    return {"decided_per_s": raced["decided_per_s"],
            "floor_decided_per_s": alone["decided_per_s"],
            "max_winners_per_round": raced["max_winners"], "devices": devices,
            "rounds": rounds}


POLL_BATCH = 10


def polls_per_upload(api_url: str, n: int) -> dict[str, Any]:
    """Push off: n batches of POLL_BATCH new files, each long-polled until
    finished; polls per batch (the goal: <= 1, one answer carries every
    verdict)."""
    api = Client(api_url)
    dev = api.signup()
    polls = []
    for _ in range(n):
        batch_id = api.send_batch(dev, [(new_file_id(), 0, secrets.token_bytes(1024), ())
                                        for _ in range(POLL_BATCH)])
        verdicts, p = api.batch_decided(dev, batch_id, WAIT_S)
        assert [v["status"] for v in verdicts] == ["accepted"] * POLL_BATCH, verdicts
        polls.append(p)
    return {"mean": round(sum(polls) / n, 3), "max": max(polls), "n": n,
            "per": f"batch of {POLL_BATCH}"}


