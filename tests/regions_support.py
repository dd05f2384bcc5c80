"""Two regions in one test: eu-west-1 (A) and us-east-1 (B), each with its
bucket, table, Redis and the replica it keeps of the other, sharing one
global directory whose writer replica is A's. Works over moto in-process
(unit) or a moto server (integration): only the endpoint differs."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalicelib.config import Runtime, set_runtime
from chalicelib.core.regions import RegionMap
from local.resources import create_all, create_directory, create_replicas
from tests.harness import Harness, settings

A, B = "eu-west-1", "us-east-1"
URLS = {A: "https://eu.sealsync.test", B: "https://us.sealsync.test"}
DIRECTORY = "sealsync-directory"


def regions_spec(suffix: str = "") -> str:
    return json.dumps({
        A: {"url": URLS[A], "table": f"sealsync-eu{suffix}", "replica": B,
            "replica_bucket": f"sealsync-eu{suffix}-replica"},
        B: {"url": URLS[B], "table": f"sealsync-us{suffix}", "replica": A,
            "replica_bucket": f"sealsync-us{suffix}-replica"}})


def region_env(region: str, suffix: str = "", **extra: str) -> dict[str, str]:
    name = f"sealsync-{'eu' if region == A else 'us'}{suffix}"
    return {"SEALSYNC_BUCKET": name, "SEALSYNC_TABLE": name, "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region, "SEALSYNC_REGIONS": regions_spec(suffix),
            "SEALSYNC_DIRECTORY_TABLE": DIRECTORY + suffix,
            "SEALSYNC_DIRECTORY_REGION": A, **extra}


def build_region(region: str, redis: Callable[[], Any] | None = None, suffix: str = "",
                 **extra: str) -> Runtime:
    """A Runtime of `region` with its resources created (and its replica of
    the other region, and its replica of the directory)."""
    rt = Runtime(settings(**region_env(region, suffix, **extra)))
    if redis is not None:
        rt.__dict__["redis"] = redis()
        rt.__dict__["redis_blocking"] = rt.__dict__["redis"]
    create_all(rt, queue=None)
    create_replicas(rt)
    assert rt.settings.directory_table is not None
    create_directory(rt.dynamodb, rt.settings.directory_table)
    return rt


def with_down(rt: Runtime, *down: str) -> Runtime:
    """The same region with the operator declaring `down` regions down
    (SEALSYNC_REGIONS_DOWN), sharing the clients."""
    regions = rt.settings.regions
    spec = json.dumps({r.name: {"url": r.url, "table": r.table, "replica": r.replica,
                                "replica_bucket": r.replica_bucket}
                       for r in regions.regions})
    view = Runtime(replace(rt.settings, regions=RegionMap.parse(regions.here, spec,
                                                                ",".join(down))))
    for shared in ("s3", "dynamodb", "redis", "redis_blocking"):
        view.__dict__[shared] = getattr(rt, shared)
    return view


class RegionHarness(Harness):
    """A Harness whose HTTP calls are served by its own region's Runtime
    (the Chalice test client serves whichever Runtime is installed)."""

    def post(self, path: str, body: Any, dev: Any = None) -> Any:
        set_runtime(self.rt)
        return super().post(path, body, dev)

    def get(self, path: str, dev: Any) -> Any:
        set_runtime(self.rt)
        return super().get(path, dev)

    def delete(self, path: str, dev: Any) -> Any:
        set_runtime(self.rt)
        return super().delete(path, dev)
