"""Home regions, as pure data and one decision (docs/DESIGN.md, "Regions").

Each account lives in one *home* region: that region's bucket and table
hold its data, and only that region writes it, so the per-file fence and
the feed counter stay single-writer (DynamoDB global tables are last-writer-
wins across regions; a fence only holds inside one). Every region keeps a
read-only *replica* of one other region (S3 cross-region replication into a
replica bucket, a global-table replica of the home table) for disaster
recovery.

`route` decides, for one request, what this region does with an account:
serve it here, send the client to its home (`Redirect`), serve a read from
the replica held here while the home is down (`Replica`), or refuse a write
while the home is down (`ReadOnly`). The operator's list of regions and the
ones declared down come from configuration (`RegionMap.parse`); the
account's home comes from the global directory (adapters/directory.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")  # an AWS region name
MAX_REGIONS = 32


class RegionConfigError(ValueError):
    """SEALSYNC_REGIONS or SEALSYNC_REGIONS_DOWN is malformed; says how."""


@dataclass(frozen=True)
class Region:
    """One region of the deployment: where clients reach its API, the name of
    its home table, and where its replica lives (region and bucket)."""

    name: str
    url: str | None = None  # None: this region, when it is the only one
    table: str | None = None  # its home table (same name for the global-table replica)
    replica: str | None = None  # the region holding its replica
    replica_bucket: str | None = None  # the CRR destination bucket, in `replica`


@dataclass(frozen=True)
class Serve:
    """The account is at home here (or nothing else is configured)."""


@dataclass(frozen=True)
class Redirect:
    """The account lives elsewhere: the client should talk to `url`."""

    region: str
    url: str


@dataclass(frozen=True)
class Replica:
    """Its home is down and this region holds its replica: serve a read from
    the replica table and bucket named here."""

    home: str
    table: str
    bucket: str


@dataclass(frozen=True)
class ReadOnly:
    """Its home is down: no write is taken anywhere until it is back (a write
    here would fork the account's history from what the home holds)."""

    home: str


Route = Serve | Redirect | Replica | ReadOnly


@dataclass(frozen=True)
class RegionMap:
    """The operator's regions as this deployment sees them."""

    here: str
    regions: tuple[Region, ...]
    down: frozenset[str] = frozenset()

    @classmethod
    def single(cls, here: str) -> RegionMap:
        """No regions configured: one region, every account at home."""
        return cls(here, (Region(here),))

    @classmethod
    def parse(cls, here: str, spec: str | None, down: str | None = None) -> RegionMap:
        """SEALSYNC_REGIONS (a JSON object: region name -> {url, table,
        replica, replica_bucket}) and SEALSYNC_REGIONS_DOWN (comma-separated
        names the operator declares down)."""
        if not spec:
            if down:
                raise RegionConfigError("SEALSYNC_REGIONS_DOWN needs SEALSYNC_REGIONS")
            return cls.single(here)
        try:
            raw = json.loads(spec)
        except ValueError as exc:
            raise RegionConfigError(f"SEALSYNC_REGIONS is not JSON: {exc}") from exc
        if not isinstance(raw, dict) or not 0 < len(raw) <= MAX_REGIONS:
            raise RegionConfigError(f"SEALSYNC_REGIONS must be an object of 1 to "
                                    f"{MAX_REGIONS} regions")
        regions = tuple(_region(name, fields) for name, fields in raw.items())
        names = {r.name for r in regions}
        if here not in names:
            raise RegionConfigError(f"SEALSYNC_REGIONS does not list this region ({here})")
        for r in regions:
            if r.replica is not None and (r.replica not in names or r.replica == r.name):
                raise RegionConfigError(f"region {r.name}: replica must be another listed "
                                        f"region, got {r.replica!r}")
        gone = frozenset(n.strip() for n in (down or "").split(",") if n.strip())
        if gone - names:
            raise RegionConfigError("SEALSYNC_REGIONS_DOWN names unlisted regions: "
                                    + ", ".join(sorted(gone - names)))
        return cls(here, regions, gone)

    @property
    def multi(self) -> bool:
        return len(self.regions) > 1

    def get(self, name: str) -> Region | None:
        return next((r for r in self.regions if r.name == name), None)

    def names(self) -> list[str]:
        return [r.name for r in self.regions]

    def pick(self, requested: object) -> str:
        """The home of a new account: the one asked for, else this region. A
        region the operator does not list is the client's mistake (400)."""
        if requested is None:
            return self.here
        if not isinstance(requested, str) or self.get(requested) is None:
            raise BadRequest("region must be one of: " + ", ".join(self.names()))
        if requested in self.down:
            raise BadRequest(f"region {requested} is not taking new accounts right now; "
                             "pick another of: " + ", ".join(
                                 n for n in self.names() if n not in self.down))
        return requested

    def route(self, home: str | None, write: bool) -> Route:
        """What this region does with a request for an account homed at
        `home` (None: not in the directory, i.e. an account from before
        regions, which lives where it always did: here)."""
        if home is None or home == self.here:
            return Serve()
        region = self.get(home)
        if region is not None and home not in self.down:
            if region.url is None:  # only a single-region map lacks URLs
                return Serve()
            return Redirect(home, region.url)
        # The home is down, or no longer listed (taken out of service):
        # reads from its replica, writes nowhere.
        if write or region is None or region.replica is None:
            return ReadOnly(home)
        if region.replica != self.here:
            keeper = self.get(region.replica)
            if keeper is None or keeper.url is None or keeper.name in self.down:
                return ReadOnly(home)
            return Redirect(keeper.name, keeper.url)
        if region.table is None or region.replica_bucket is None:
            return ReadOnly(home)
        return Replica(home, region.table, region.replica_bucket)


def _region(name: object, fields: Any) -> Region:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegionConfigError(f"not a region name: {name!r}")
    if not isinstance(fields, dict):
        raise RegionConfigError(f"region {name}: expected an object")
    unknown = set(fields) - {"url", "table", "replica", "replica_bucket"}
    if unknown:
        raise RegionConfigError(f"region {name}: unknown fields {sorted(unknown)}")
    url = fields.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://127.", "http://localhost")):
        raise RegionConfigError(f"region {name}: url must be https:// (or http:// to this "
                                f"machine, locally), got {url!r}")
    values = {k: fields.get(k) for k in ("table", "replica", "replica_bucket")}
    for key, value in values.items():
        if value is not None and (not isinstance(value, str) or not value):
            raise RegionConfigError(f"region {name}: {key} must be a non-empty string")
    if (values["replica"] is None) != (values["replica_bucket"] is None):
        raise RegionConfigError(f"region {name}: replica and replica_bucket go together")
    return Region(name, url.rstrip("/"), values["table"], values["replica"],
                  values["replica_bucket"])
