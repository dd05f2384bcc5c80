"""Home regions at run time: which region serves an account, per request.

The pure decision is core/regions.py; this module looks the home up in the
global directory (cached per warm Lambda, like the authorizer's answer) and
turns the decision into a Runtime to serve with or an error the client
acts on (WrongRegion: 421 with the home's URL; HomeDown: 503, read-only).
A deployment without SEALSYNC_REGIONS has no directory and pays nothing.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from .config import Runtime
from .core.errors import Conflict, HomeDown, WrongRegion
from .core.ids import new_id
from .core.regions import ReadOnly, Redirect, Replica

CACHE_TTL_S = 300  # a moved home is noticed within this (docs/OPERATIONS.md)
CACHE_MAX = 10_000  # entries per container; cleared whole when full
CLAIM_TRIES = 3  # a random 128-bit id collides never; a rigged one gives up

_lock = threading.Lock()


def home_of(rt: Runtime, user_id: str) -> str | None:
    """The account's home region (None: not in the directory, so here),
    from this container's cache or the directory."""
    if rt.directory is None:
        return None
    now = time.monotonic()
    cache = rt.homes
    hit = cache.get(user_id)
    if hit is not None and hit[1] > now:
        return hit[0]
    home = rt.directory.home(user_id)
    with _lock:
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[user_id] = (home, now + CACHE_TTL_S)
    return home


def serving(rt: Runtime, user_id: str, write: bool) -> Runtime:
    """The Runtime that serves this request for `user_id`: `rt` itself at
    home, a read-only view of the replica while the home is down. Raises
    WrongRegion when the client should go elsewhere, HomeDown for a write
    while the home is down."""
    if not rt.settings.regions.multi:
        return rt
    decision = rt.settings.regions.route(home_of(rt, user_id), write)
    if isinstance(decision, Redirect):
        raise WrongRegion(decision.region, decision.url)
    if isinstance(decision, ReadOnly):
        raise HomeDown(decision.home)
    if isinstance(decision, Replica):
        return replica_runtime(rt, decision)
    return rt


def replica_runtime(rt: Runtime, replica: Replica) -> Runtime:
    """A Runtime on the replica of `replica.home` held in this region (its
    global-table replica and CRR bucket), sharing this one's clients."""
    views: dict[str, Runtime] = rt.__dict__.setdefault("_replicas", {})
    with _lock:
        view = views.get(replica.home)
        if view is None:
            view = Runtime(replace(rt.settings, table=replica.table, bucket=replica.bucket))
            for shared in ("s3", "dynamodb", "redis", "redis_blocking"):
                view.__dict__[shared] = getattr(rt, shared)
            view.__dict__["usage"] = _UncountedUsage(view.usage)
            views[replica.home] = view
        return view


def new_home(rt: Runtime, requested: object) -> str:
    """Where a new account lives: its pick from the operator's list (400
    otherwise). Sign-up for another region is sent there (WrongRegion):
    each region's functions touch only their own bucket and table."""
    regions = rt.settings.regions
    home = regions.pick(requested)
    region = regions.get(home)
    if home != regions.here and region is not None and region.url is not None:
        raise WrongRegion(home, region.url)
    return home


def claim_id(rt: Runtime, home: str, now: int) -> str:
    """A fresh account id, recorded in the directory as homed at `home`
    (the conditional put: an id lives in exactly one region)."""
    if rt.directory is None:
        return new_id()
    url = rt.settings.regions.get(home)
    for _ in range(CLAIM_TRIES):
        user_id = new_id()
        if rt.directory.claim(user_id, home, url.url if url else None, now):
            return user_id
    raise Conflict("could not allocate an account id; try again")


class _UncountedUsage:
    """Usage counters of a replica: read, never counted into. A counter
    written to the replica table would come back to the home as a
    conflicting write when it returns; reads served during a failover are
    not metered (docs/ACCOUNT.md)."""

    def __init__(self, usage: Any) -> None:
        self._usage = usage

    def count_requests(self, *args: Any, **kwargs: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._usage, name)
