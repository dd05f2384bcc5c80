"""The state machine's "expire" step (machine.py): the `retention` job's
per-file expiry (chalicelib/retention.py) with a window of 0 s, so every
revision superseded before now expires, between commits or at a step
boundary of a commit in flight (then with the collector right after it, so
a commit deduping against an expiring chunk meets both). Afterwards, read
through the API: the head and every revision not expired answer 200 and
name their chunks; an expired one answers 410 `expired` and still names
its manifest. The model (model.py) and the metering check (metering.py)
read the same `expired` marks from the table after every step.
"""
from __future__ import annotations

import time

from chalicelib import retention
from tests.property.world import World


def expire_superseded(world: World, files: list[str]) -> int:
    """Expire every revision superseded before now; how many expired."""
    tally = retention.Tally()
    now = int(time.time()) + 1  # "superseded for more than 0 s": a second ago
    for file_id in files:
        retention.expire_file(world.rt, world.user_id, file_id, 0, now, tally)
    return tally.expired


def check_reads(world: World, files: list[str]) -> None:
    """The API's answer for every revision item: 200 with chunks unless
    expired, 410 with the manifest's place if expired; the head never expired."""
    dev = world.devices[0]
    for file_id in files:
        head = world.rt.meta.get_head(world.user_id, file_id)
        if head is None:
            continue
        for v in world.rt.meta.list_revisions(world.user_id, file_id, 1000):
            r = world.h.get(f"/v1/files/{file_id}?revision={v.revision}", dev)
            if v.expired_at is None:
                assert r.status_code == 200, (v, r.body)
                assert len(r.json_body.get("chunks", ())) == len(set(v.chunk_ids))
            else:
                assert v.revision < head.revision, f"the head expired: {v}"
                assert not v.chunk_ids, f"an expired revision still names chunks: {v}"
                assert r.status_code == 410 and r.json_body["error"] == "expired", r.body
                assert v.deleted or "manifest_url" in r.json_body
