"""Create the AWS resources Sealsync needs (bucket, table, queue, S3->SQS
notification) against any endpoint: moto in-process, moto server, or AWS.
The same shapes are declared for deployment in .chalice/ templates."""
from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.meta import PENDING_INDEX


def _exists(exc: Exception) -> bool:
    """Already made (by another region's process sharing this moto)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("ResourceInUseException", "BucketAlreadyOwnedByYou")


def create_table(dynamodb: Any, table: str) -> None:
    try:
        _create_table(dynamodb, table)
    except dynamodb.exceptions.ClientError as exc:
        if not _exists(exc):
            raise


def _create_table(dynamodb: Any, table: str) -> None:
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"}
                              for n in ("pk", "sk", "gpk", "gsk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": PENDING_INDEX,
            "KeySchema": [{"AttributeName": "gpk", "KeyType": "HASH"},
                          {"AttributeName": "gsk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})


def create_queue(sqs: Any, name: str) -> tuple[str, str]:
    """Return (url, arn) of the commit queue, with a dead-letter queue."""
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                     "maxReceiveCount": "10"})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn


def create_bucket(s3: Any, bucket: str, queue_arn: str | None = None) -> None:
    _new_bucket(s3, bucket)
    if queue_arn:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
                "QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [
                    {"Name": "prefix", "Value": "staging/"}]}}}]})


def create_all(rt: Any, queue: str | None) -> str | None:
    """Create everything for a Runtime; return the queue URL (if any)."""
    create_table(rt.dynamodb, rt.settings.table)
    url = arn = None
    if queue:
        sqs = rt._boto("sqs")
        url, arn = create_queue(sqs, queue)
    create_bucket(rt.s3, rt.settings.bucket, arn)
    verify_sender(rt)
    return url


def verify_sender(rt: Any) -> None:
    """SES sends only from a verified identity (in AWS: the operator's
    domain, verified once; docs/OPERATIONS.md)."""
    rt._boto("ses").verify_email_identity(EmailAddress=rt.settings.mail_from)


def create_directory(dynamodb: Any, table: str) -> None:
    """The global directory (adapters/directory.py): in AWS a global table
    with a replica in every region (deploy/ templates); locally one per
    moto region, the directory region's holding every entry."""
    try:
        dynamodb.create_table(
            TableName=table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    except dynamodb.exceptions.ClientError as exc:
        if not _exists(exc):
            raise


def create_replicas(rt: Any) -> None:
    """In this region, the replicas it keeps of other regions (their home
    table under its own name, their CRR bucket), as the deploy templates
    declare them; local/replicate.py fills them."""
    regions = rt.settings.regions
    for region in regions.regions:
        if region.replica == regions.here and region.table and region.replica_bucket:
            create_table(rt.dynamodb, region.table)
            _new_bucket(rt.s3, region.replica_bucket)


def _new_bucket(s3: Any, bucket: str) -> None:
    """A bucket in the client's region (us-east-1 takes no location)."""
    region = s3.meta.region_name
    where = {} if region in (None, "us-east-1") else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **where)
    except s3.exceptions.ClientError as exc:
        if not _exists(exc):
            raise
