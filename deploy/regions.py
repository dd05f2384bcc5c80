"""Home regions in the deploy templates (docs/OPERATIONS.md, "Regions").

A stage whose environment lists SEALSYNC_REGIONS, and whose `region` (in
.chalice/config.json) names the region it is deployed to, gains:

  - S3 cross-region replication of its data bucket's committed objects
    (chunks/, manifests/, packs/; never staging/, whose events would start
    commits in the replica's region) into its replica bucket in its
    partner region, deletions included, through a role that may read only
    those prefixes here and replicate only into them there;
  - its table as a DynamoDB global table, replicated into its partner region
    (same name there: the read-only replica failover reads use);
  - the replica buckets it keeps for the regions that replicate into it;
  - in the directory region only: the global directory, a global table with
    a replica in every listed region.

One stack per region; the partner's stack must exist before replication
starts (S3 checks the destination bucket when the rule is written). The
pure region map (chalicelib/core/regions.py) is the one parser of the list.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.core.regions import RegionMap

REPLICATED = ("chunks/", "manifests/", "packs/")
NONCURRENT_DAYS = 7  # overwritten or deleted versions kept this long, then gone


@dataclass(frozen=True)
class Plan:
    """What one region's stack adds for home regions."""

    here: str
    bucket: str
    table: str
    replica_region: str
    replica_bucket: str  # the CRR destination, in replica_region
    kept_buckets: tuple[str, ...]  # replicas of other regions, kept here
    directory: str | None  # the directory table, when this is its region
    all_regions: tuple[str, ...]


def plan(stage: str, stage_cfg: dict[str, Any], env: dict[str, str]) -> Plan | None:
    """The stage's Plan; None for a single-region stage."""
    spec = env.get("SEALSYNC_REGIONS")
    if not spec:
        return None
    here = stage_cfg.get("region")
    if not here:
        raise SystemExit(f"stage {stage}: SEALSYNC_REGIONS needs the stage's \"region\"")
    regions = RegionMap.parse(here, spec)
    me = regions.get(here)
    assert me is not None
    if me.replica is None or me.replica_bucket is None or me.table != env["SEALSYNC_TABLE"]:
        raise SystemExit(f"stage {stage}: its region's entry in SEALSYNC_REGIONS needs its "
                         "table (SEALSYNC_TABLE), replica and replica_bucket")
    directory_region = env.get("SEALSYNC_DIRECTORY_REGION") or regions.names()[0]
    return Plan(here, env["SEALSYNC_BUCKET"], env["SEALSYNC_TABLE"], me.replica,
                me.replica_bucket,
                tuple(r.replica_bucket for r in regions.regions
                      if r.replica == here and r.replica_bucket),
                env["SEALSYNC_DIRECTORY_TABLE"] if directory_region == here else None,
                tuple(regions.names()))


def replication_policy(p: Plan, partition: str) -> dict[str, Any]:
    """The replication role's rights: read the committed prefixes' versions
    here, write replicas (and delete markers) under them there; nothing else."""
    src, dst = f"arn:{partition}:s3:::{p.bucket}", f"arn:{partition}:s3:::{p.replica_bucket}"
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "SourceConfiguration", "Effect": "Allow",
         "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"], "Resource": [src]},
        {"Sid": "SourceVersions", "Effect": "Allow",
         "Action": ["s3:GetObjectVersionAcl", "s3:GetObjectVersionForReplication",
                    "s3:GetObjectVersionTagging"],
         "Resource": [f"{src}/{prefix}*" for prefix in REPLICATED]},
        {"Sid": "ReplicaWrites", "Effect": "Allow",
         "Action": ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"],
         "Resource": [f"{dst}/{prefix}*" for prefix in REPLICATED]}]}


def _assume_s3() -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]}


def _rules(dst_arn: str) -> list[dict[str, Any]]:
    return [{"Id": f"replicate-{prefix.rstrip('/')}", "Status": "Enabled", "Priority": i + 1,
             "Filter": {"Prefix": prefix},
             "DeleteMarkerReplication": {"Status": "Enabled"},
             "Destination": {"Bucket": dst_arn}} for i, prefix in enumerate(REPLICATED)]


def _private_bucket(name: str) -> dict[str, Any]:
    return {"Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain", "Properties": {
                "BucketName": name,
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "VersioningConfiguration": {"Status": "Enabled"},
                "LifecycleConfiguration": {"Rules": [_noncurrent_rule()]}}}


def _noncurrent_rule() -> dict[str, Any]:
    return {"Id": "expire-old-versions", "Status": "Enabled",
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_DAYS},
            "ExpiredObjectDeleteMarker": True}


def _global(properties: dict[str, Any], regions: tuple[str, ...]) -> dict[str, Any]:
    """A table's properties as an AWS::DynamoDB::GlobalTable's, one replica
    per region, each with point-in-time recovery."""
    out = {k: v for k, v in properties.items() if k != "PointInTimeRecoverySpecification"}
    out["StreamSpecification"] = {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    out["Replicas"] = [{"Region": r, "PointInTimeRecoverySpecification": {
        "PointInTimeRecoveryEnabled": True}} for r in regions]
    return out


def fix_sam(template: dict[str, Any], p: Plan) -> dict[str, Any]:
    """The SAM template with the Plan's resources (after fix_sam.fix)."""
    res = template["Resources"]
    bucket = res["DataBucket"]["Properties"]
    bucket["VersioningConfiguration"] = {"Status": "Enabled"}
    bucket["LifecycleConfiguration"]["Rules"].append(_noncurrent_rule())
    bucket["ReplicationConfiguration"] = {
        "Role": {"Fn::GetAtt": ["ReplicationRole", "Arn"]},
        "Rules": _rules(f"arn:aws:s3:::{p.replica_bucket}")}
    res["ReplicationRole"] = {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": _assume_s3(),
        "Policies": [{"PolicyName": "replicate-committed-objects",
                      "PolicyDocument": replication_policy(p, "aws")}]}}
    table = res["Table"]
    table["Type"] = "AWS::DynamoDB::GlobalTable"
    table["Properties"] = _global(table["Properties"], (p.here, p.replica_region))
    for i, name in enumerate(p.kept_buckets):
        res[f"KeptReplicaBucket{i}"] = _private_bucket(name)
    if p.directory:
        res["DirectoryTable"] = {
            "Type": "AWS::DynamoDB::GlobalTable", "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain", "Properties": _global({
                "TableName": p.directory, "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]},
                p.all_regions)}
    return template


def terraform(p: Plan) -> dict[str, Any]:
    """The same in Terraform: resources to merge into sealsync-resources.tf.json,
    and the changes to its table (`table_extra`)."""
    partition = "${data.aws_partition.chalice.partition}"
    assume = _assume_s3()
    assume["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] = \
        "${data.aws_caller_identity.chalice.account_id}"
    kept = {f"kept_{i}": {"bucket": name, "lifecycle": {"prevent_destroy": True}}
            for i, name in enumerate(p.kept_buckets)}
    out: dict[str, Any] = {
        "aws_s3_bucket": kept,
        "aws_s3_bucket_versioning": {
            name: {"bucket": f"${{aws_s3_bucket.{name}.id}}",
                   "versioning_configuration": {"status": "Enabled"}}
            for name in ("data", *kept)},
        "aws_s3_bucket_public_access_block": {name: {
            "bucket": f"${{aws_s3_bucket.{name}.id}}", "block_public_acls": True,
            "block_public_policy": True, "ignore_public_acls": True,
            "restrict_public_buckets": True} for name in kept},
        "aws_iam_role": {"replication": {"name_prefix": "sealsync-replication-",
                                         "assume_role_policy": json.dumps(assume)}},
        "aws_iam_role_policy": {"replication": {
            "role": "${aws_iam_role.replication.id}",
            "policy": json.dumps(replication_policy(p, partition))}},
        "aws_s3_bucket_replication_configuration": {"data": {
            "bucket": "${aws_s3_bucket.data.id}", "role": "${aws_iam_role.replication.arn}",
            "depends_on": ["aws_s3_bucket_versioning.data"],
            "rule": [{"id": f"replicate-{prefix.rstrip('/')}", "status": "Enabled",
                      "priority": i + 1, "filter": {"prefix": prefix},
                      "delete_marker_replication": {"status": "Enabled"},
                      "destination": {"bucket": f"arn:{partition}:s3:::{p.replica_bucket}"}}
                     for i, prefix in enumerate(REPLICATED)]}},
    }
    if p.directory:
        out["aws_dynamodb_table"] = {"directory": {
            "name": p.directory, "billing_mode": "PAY_PER_REQUEST", "hash_key": "pk",
            "attribute": [{"name": "pk", "type": "S"}], "stream_enabled": True,
            "stream_view_type": "NEW_AND_OLD_IMAGES",
            "replica": [{"region_name": r} for r in p.all_regions if r != p.here],
            "lifecycle": {"prevent_destroy": True}}}
    return out


def table_extra(p: Plan) -> dict[str, Any]:
    """The main table as a global table (Terraform: streams and a replica)."""
    return {"stream_enabled": True, "stream_view_type": "NEW_AND_OLD_IMAGES",
            "replica": [{"region_name": p.replica_region, "point_in_time_recovery": True}]}


def policy_statements(p: Plan | None, env: dict[str, str], arn: str,
                      account: str) -> list[dict[str, Any]]:
    """The functions' extra rights: read the directory here, claim in its
    writer region, read (only) the replicas this region keeps."""
    if p is None:
        return []
    directory = env["SEALSYNC_DIRECTORY_TABLE"]
    writer = env.get("SEALSYNC_DIRECTORY_REGION") or p.all_regions[0]
    regions = RegionMap.parse(p.here, env["SEALSYNC_REGIONS"])
    kept = [r for r in regions.regions if r.replica == p.here and r.table and r.replica_bucket]
    here = "${AWS::Region}"
    statements = [
        {"Sid": "DirectoryRead", "Effect": "Allow", "Action": ["dynamodb:GetItem"],
         "Resource": [f"{arn}:dynamodb:{here}:{account}:table/{directory}"]},
        {"Sid": "DirectoryClaim", "Effect": "Allow",
         "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
         "Resource": [f"{arn}:dynamodb:{writer}:{account}:table/{directory}"]},
        {"Sid": "ReplicaTablesRead", "Effect": "Allow",
         "Action": ["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query"],
         "Resource": [f"{arn}:dynamodb:{here}:{account}:table/{r.table}" for r in kept]},
        {"Sid": "ReplicaObjectsRead", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{arn}:s3:::{r.replica_bucket}/{prefix}*" for r in kept
                      for prefix in REPLICATED]},
        {"Sid": "ReplicaList", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"{arn}:s3:::{r.replica_bucket}" for r in kept]},
    ]
    return [st for st in statements if st["Resource"]]  # keeping no replica: no grant
