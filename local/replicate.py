"""What AWS does between regions and moto does not: S3 cross-region
replication of a home bucket into its replica bucket, and a global table's
replication of the home table into the same-named table elsewhere.

A plain copy of everything, run on demand (tests) or every few seconds by a
multi-region local stack. Staging objects are not replicated, as the deploy
templates' replication rules leave them out: a replica must never trigger a
commit in the region that holds it.
"""
from __future__ import annotations

from typing import Any

REPLICATED_PREFIXES = ("chunks/", "manifests/", "packs/")


def replicate(src_s3: Any, src_bucket: str, src_ddb: Any, table: str,
              dst_s3: Any, dst_bucket: str, dst_ddb: Any) -> tuple[int, int]:
    """Copy the home's committed objects and every table item into the
    replicas; returns (objects, items) copied."""
    objects = 0
    for prefix in REPLICATED_PREFIXES:
        for page in src_s3.get_paginator("list_objects_v2").paginate(
                Bucket=src_bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                body = src_s3.get_object(Bucket=src_bucket, Key=obj["Key"])["Body"].read()
                dst_s3.put_object(Bucket=dst_bucket, Key=obj["Key"], Body=body)
                objects += 1
    items = 0
    for page in src_ddb.get_paginator("scan").paginate(TableName=table):
        for item in page.get("Items", []):
            dst_ddb.put_item(TableName=table, Item=item)
            items += 1
    return objects, items


def replicate_region(home_rt: Any, keeper_rt: Any) -> tuple[int, int]:
    """Replicate `home_rt`'s region into the replicas `keeper_rt`'s region
    keeps of it (its entry in SEALSYNC_REGIONS names them)."""
    region = home_rt.settings.regions.get(home_rt.settings.region)
    if region is None or region.replica != keeper_rt.settings.region \
            or not region.table or not region.replica_bucket:
        raise ValueError(f"{keeper_rt.settings.region} keeps no replica of "
                         f"{home_rt.settings.region}")
    return replicate(home_rt.s3, home_rt.settings.bucket, home_rt.dynamodb, region.table,
                     keeper_rt.s3, region.replica_bucket, keeper_rt.dynamodb)
