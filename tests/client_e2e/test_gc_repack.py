"""The real client reads chunks the `gc` job moved into server-written
packs (no encrypted index: FORMAT.md §12), after the client's own packs
were collected, on the local stack: a fresh device syncs the folder, and an
edit that dedups against moved chunks syncs too (docs/DESIGN.md "Pack and
chunk lifecycle")."""
from __future__ import annotations

import os
import time
from typing import Any

import pytest

from chalicelib import gc as collector
from chalicelib.config import Runtime
from chalicelib.core import gc as core
from tests.client_e2e.conftest import settle, tree
from tests.client_e2e.test_packs import objects
from tests.e2e.conftest import StackProcess
from tests.harness import settings

pytestmark = pytest.mark.e2e
LATER = 3 * 24 * 3600


def stack_runtime(stack: StackProcess) -> Runtime:
    s = stack.state
    return Runtime(settings(SEALSYNC_AWS_ENDPOINT=s["aws_endpoint"], SEALSYNC_TABLE=s["table"],
                            SEALSYNC_BUCKET=s["bucket"]))


def repack_everything(rt: Runtime, user: str) -> int:
    """Move every live blob of every pack into a server-written pack, as the
    job does for a mostly-dead one (same code path, forced)."""
    prefix = f"packs/{user}/"
    packs = [k[len(prefix):] for k in objects_keys(rt, prefix)]
    indexed = rt.gc.pack_index(user, packs)
    every = {c for ids in indexed.values() for c in ids}
    known = rt.meta.known_chunks(user, every)
    where = rt.packs.locations(user, known)
    tally = core.Tally()
    for p in packs:
        blobs = core.live_blobs(p, indexed[p], where, known)
        assert blobs, p
        assert collector._repack(rt, user, p, blobs, tally)
    return tally.blobs_moved


def objects_keys(rt: Runtime, prefix: str) -> list[str]:
    got = rt.s3.list_objects_v2(Bucket=rt.settings.bucket, Prefix=prefix)
    return [o["Key"] for o in got.get("Contents", [])]


def test_a_fresh_device_reads_repacked_chunks_after_the_old_packs_are_gone(
        stack: StackProcess, devices: Any) -> None:
    a, b = devices
    user = a.config.user_id
    for i in range(4):
        (a.root / f"mid{i}.bin").write_bytes(os.urandom(300_000 + i))
    settle(a)
    rt = stack_runtime(stack)
    before = set(objects(stack, f"packs/{user}/"))
    assert before and all(d.startswith(b"SSPK") for d in objects(stack, f"packs/{user}/").values())
    assert repack_everything(rt, user) > 0
    report = collector.collect(rt, int(time.time()) + LATER)
    assert report["packs_deleted"] == len(before)
    after = objects(stack, f"packs/{user}/")
    assert not before & set(after) and all(d.startswith(b"SSRP\x01") for d in after.values())
    settle(b)
    assert tree(b) == tree(a)
    # an edit that keeps most chunks (dedup against the moved ones) syncs too
    data = (a.root / "mid0.bin").read_bytes()
    (a.root / "mid0.bin").write_bytes(data + b"appended")
    settle(a, b)
    assert tree(b) == tree(a)
