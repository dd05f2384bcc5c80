"""Make chalice 1.34's Terraform output valid for current Terraform and the
AWS provider 6, and complete it with the resources chalice leaves out.

Chalice pins `terraform < 1.4` and `aws < 5`, and writes syntax those
releases deprecated and AWS provider 6 removed. This rewrites, as data:
  - the version constraints (Terraform >= 1.5, aws ~> 6, no null provider);
  - `data.null_data_source` (deprecated) -> removed (chalice never reads it);
  - `data.aws_region.*.name` (deprecated in aws 6) -> `.region`;
  - `aws_api_gateway_deployment.stage_name` (removed in aws 6) -> a separate
    `aws_api_gateway_stage`, redeployed when the API's swagger changes;
  - the IAM policy placeholders (${AWS::Region}, ...) -> data sources;
  - the SQS event source: ReportBatchItemFailures and a concurrency cap.
and adds (in `sealsync-resources.tf.json`) the bucket, queues, queue policy,
S3 -> SQS notification and the DynamoDB table, and the back office's
schedules and mail notices (deploy/terraform_backoffice.py), the same
shapes as deploy/sam-merge.yaml.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .terraform_backoffice import resources as backoffice

TERRAFORM_VERSION = ">= 1.5"
AWS_PROVIDER = {"source": "hashicorp/aws", "version": ">= 6.0, < 7.0"}
_SUBST = {
    "${AWS::Partition}": "${data.aws_partition.chalice.partition}",
    "${AWS::Region}": "${data.aws_region.chalice.region}",
    "${AWS::AccountId}": "${data.aws_caller_identity.chalice.account_id}",
    "${WebsocketAPI}": "${aws_apigatewayv2_api.websocket_api.id}",
}
WEBSOCKET_SID = "WebSocketPush"


@dataclass(frozen=True)
class Names:
    """One stage's resource names (from .chalice/config.json)."""

    app: str
    stage: str
    bucket: str
    table: str
    queue: str
    commit_concurrency: int = 50
    regions: Any = None  # deploy.regions.Plan of a multi-region stage


def _walk_strings(node: Any, fn: Any) -> Any:
    if isinstance(node, dict):
        return {k: _walk_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk_strings(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node


def fix_policy(policy_json: str, has_websocket_api: bool) -> str:
    """A role policy with its placeholders bound to Terraform data sources.
    Without a WebSocket API the statement that names it is dropped."""
    doc = json.loads(policy_json)
    doc["Statement"] = [s for s in doc["Statement"]
                        if has_websocket_api or s.get("Sid") != WEBSOCKET_SID]
    text = json.dumps(doc)
    for placeholder, value in _SUBST.items():
        text = text.replace(placeholder, value)
    return text


def fix(doc: dict[str, Any], names: Names) -> dict[str, Any]:
    """The chalice Terraform document, rewritten (a new dict)."""
    doc = _walk_strings(doc, lambda s: s.replace("data.aws_region.chalice.name",
                                                 "data.aws_region.chalice.region"))
    doc["terraform"] = {"required_version": TERRAFORM_VERSION,
                        "required_providers": {"aws": dict(AWS_PROVIDER)}}
    data = doc.get("data", {})
    data.pop("null_data_source", None)
    res = doc["resource"]
    has_ws = "websocket_api" in res.get("aws_apigatewayv2_api", {})
    for policy in res.get("aws_iam_role_policy", {}).values():
        policy["policy"] = fix_policy(policy["policy"], has_ws)

    for deployment_name, deployment in res.get("aws_api_gateway_deployment", {}).items():
        stage_name = deployment.pop("stage_name", None)
        deployment.pop("stage_description", None)
        deployment["triggers"] = {"redeployment": "${md5(local.chalice_api_swagger)}"}
        if stage_name:
            res.setdefault("aws_api_gateway_stage", {})[deployment_name] = {
                "stage_name": stage_name,
                "rest_api_id": deployment["rest_api_id"],
                "deployment_id": f"${{aws_api_gateway_deployment.{deployment_name}.id}}",
            }
    doc = _walk_strings(doc, lambda s: s.replace(
        "aws_api_gateway_deployment.rest_api.invoke_url",
        "aws_api_gateway_stage.rest_api.invoke_url"))
    res = doc["resource"]

    for mapping in res.get("aws_lambda_event_source_mapping", {}).values():
        if mapping["event_source_arn"].endswith(f":{names.queue}"):
            mapping["event_source_arn"] = "${aws_sqs_queue.commit.arn}"
            mapping["function_response_types"] = ["ReportBatchItemFailures"]
            mapping["scaling_config"] = {"maximum_concurrency": names.commit_concurrency}
    return doc


def resources(names: Names) -> dict[str, Any]:
    """What chalice does not create: the app's data and event plumbing."""
    bucket_arn = f"arn:${{data.aws_partition.chalice.partition}}:s3:::{names.bucket}"
    queue_policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "S3StagingEvents", "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
            "Resource": "${aws_sqs_queue.commit.arn}",
            "Condition": {
                "ArnEquals": {"aws:SourceArn": bucket_arn},
                "StringEquals": {
                    "aws:SourceAccount": "${data.aws_caller_identity.chalice.account_id}"}},
        }],
    }
    keep = {"lifecycle": {"prevent_destroy": True}}
    out = {"resource": {
        "aws_s3_bucket": {"data": {"bucket": names.bucket, **keep}},
        "aws_s3_bucket_ownership_controls": {"data": {
            "bucket": "${aws_s3_bucket.data.id}",
            "rule": {"object_ownership": "BucketOwnerEnforced"}}},
        "aws_s3_bucket_public_access_block": {"data": {
            "bucket": "${aws_s3_bucket.data.id}", "block_public_acls": True,
            "block_public_policy": True, "ignore_public_acls": True,
            "restrict_public_buckets": True}},
        "aws_s3_bucket_server_side_encryption_configuration": {"data": {
            "bucket": "${aws_s3_bucket.data.id}",
            "rule": [{"apply_server_side_encryption_by_default": {
                "sse_algorithm": "AES256"}}]}},
        "aws_s3_bucket_lifecycle_configuration": {"data": {
            "bucket": "${aws_s3_bucket.data.id}",
            "rule": [
                {"id": "expire-staging", "status": "Enabled",
                 "filter": {"prefix": "staging/"}, "expiration": {"days": 1}},
                {"id": "abort-incomplete-multipart", "status": "Enabled",
                 "filter": {}, "abort_incomplete_multipart_upload": {
                     "days_after_initiation": 1}},
            ]}},
        "aws_s3_bucket_notification": {"staging": {
            "bucket": "${aws_s3_bucket.data.id}",
            "queue": [{"queue_arn": "${aws_sqs_queue.commit.arn}",
                       "events": ["s3:ObjectCreated:*"], "filter_prefix": "staging/"}],
            "depends_on": ["aws_sqs_queue_policy.commit"]}},
        "aws_sqs_queue": {
            "commit": {
                "name": names.queue, "visibility_timeout_seconds": 180,
                "sqs_managed_sse_enabled": True,
                "redrive_policy": json.dumps({
                    "deadLetterTargetArn": "${aws_sqs_queue.commit_dlq.arn}",
                    "maxReceiveCount": 10})},
            "commit_dlq": {"name": f"{names.queue}-dlq",
                           "message_retention_seconds": 1209600,
                           "sqs_managed_sse_enabled": True},
        },
        "aws_sqs_queue_policy": {"commit": {
            "queue_url": "${aws_sqs_queue.commit.id}",
            "policy": json.dumps(queue_policy)}},
        "aws_dynamodb_table": {"main": {
            "name": names.table, "billing_mode": "PAY_PER_REQUEST",
            "hash_key": "pk", "range_key": "sk",
            "attribute": [{"name": n, "type": "S"} for n in ("pk", "sk", "gpk", "gsk")],
            "global_secondary_index": [{
                "name": "pending", "hash_key": "gpk", "range_key": "gsk",
                "projection_type": "KEYS_ONLY"}],
            "ttl": {"attribute_name": "expires_at", "enabled": True},
            "point_in_time_recovery": {"enabled": True},
            **keep}},
        **backoffice(names.app, names.stage),
    }, "output": {
        "BucketName": {"value": "${aws_s3_bucket.data.id}"},
        "TableName": {"value": "${aws_dynamodb_table.main.name}"},
        "CommitQueueUrl": {"value": "${aws_sqs_queue.commit.id}"},
        "DeadLetterQueueUrl": {"value": "${aws_sqs_queue.commit_dlq.id}"},
    }}
    if names.regions is not None:  # home regions: replication, global tables
        from . import regions

        resource: dict[str, Any] = out["resource"]
        for kind, items in regions.terraform(names.regions).items():
            resource.setdefault(kind, {}).update(items)
        resource["aws_dynamodb_table"]["main"].update(regions.table_extra(names.regions))
    return out
