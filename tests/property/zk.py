"""Zero knowledge under faults (invariant 6): after a randomized run with
crashes, lock expiries and Redis restarts, no marker from the plaintext
names and contents, and no key or secret, is anywhere the server keeps
bytes: S3 objects and keys, DynamoDB items, Redis keys and values, and the
logs of every handler invocation, crashed ones included.

The scan is the client e2e suite's (`server_side_bytes`), pointed at this
run's bucket, table and Redis, with the captured log lines as its "stderr".
"""
from __future__ import annotations

from typing import Any

from tests.client_e2e.test_zero_knowledge import server_side_bytes
from tests.property.world import World


class _Target:
    """What `server_side_bytes` reads from a running stack."""

    def __init__(self, world: World) -> None:
        s = world.rt.settings
        self.state: dict[str, Any] = {"aws_endpoint": s.aws_endpoint, "region": s.region,
                                      "bucket": s.bucket, "table": s.table,
                                      "redis_url": s.redis_url}
        self.stdout_lines: list[str] = []
        self._logs = world.logs

    def stderr(self) -> str:
        return "\n".join(self._logs.lines)


def secrets_of(world: World) -> list[str]:
    """What must never reach the server side: plaintext markers, key
    material, and the credentials a device sends (verified, never kept)."""
    ring = world.ring
    keys = [world.keys.master.hex(), world.keys.root_folder_key().hex(),
            ring.content.hex(), ring.manifest.hex(), ring.chunk_id.hex()]
    creds = [world.devices[0].auth_key] + [d.token for d in world.devices]
    return [*world.markers.all(), *keys, *creds]


def assert_zero_knowledge(world: World, expect_crash_logs: bool) -> None:
    found = server_side_bytes(_Target(world))  # type: ignore[arg-type]
    for where, blobs in found.items():
        for marker in secrets_of(world):
            needle = marker.encode().lower()
            hits = [blob[:80] for blob in blobs if needle in blob.lower()]
            assert not hits, f"{marker[:12]}... found in {where}: {hits[:3]}"
    # Positive controls: the scan sees the ciphertext, the ids the server
    # may know, and the logs of crashed handlers.
    user = world.user_id.encode()
    assert not found["s3"] or any(user in blob for blob in found["s3"])
    assert any(user in blob for blob in found["dynamodb"])
    if expect_crash_logs:
        assert any(b"InjectedCrash" in blob for blob in found["logs"])
