"""Create the AWS resources Sealsync needs (bucket, table, queue, S3->SQS
notification) against any endpoint: moto in-process, moto server, or AWS.
The same shapes are declared for deployment in .chalice/ templates."""
from __future__ import annotations

import json
from typing import Any

from chalicelib.adapters.meta import PENDING_INDEX


def create_table(dynamodb: Any, table: str) -> None:
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
    s3.create_bucket(Bucket=bucket)
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
