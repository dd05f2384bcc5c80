"""Least privilege must still be enough: every S3 and DynamoDB request the
app makes (and every URL it presigns) through a whole session of the real
handlers is allowed by the generated policy, on the exact key or table."""
from __future__ import annotations

import json
import time
from fnmatch import fnmatchcase
from typing import Any

from app import on_commit_queue
from chalicelib.core.ids import new_id
from chalicelib.sweeper import sweep
from deploy import policy
from tests.harness import Harness
from tests.unit.test_events import s3_event, s3_record, sqs_event

ACCOUNT, REGION = "123456789012", "us-east-1"
TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
            "ConditionCheck": "ConditionCheckItem"}


def needed(service: str, op: str, p: dict[str, Any]) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs one request needs."""
    if service == "s3":
        obj = f"arn:aws:s3:::{p.get('Bucket')}/{p.get('Key')}"
        if op in ("HeadObject", "GetObject"):
            return [("s3:GetObject", obj)]
        if op == "PutObject":
            return [("s3:PutObject", obj)]
        if op == "DeleteObject":
            return [("s3:DeleteObject", obj)]
        if op == "CopyObject":
            src = p["CopySource"]
            return [("s3:PutObject", obj),
                    ("s3:GetObject", f"arn:aws:s3:::{src['Bucket']}/{src['Key']}")]
        if op == "ListObjectsV2":
            return [("s3:ListBucket", f"arn:aws:s3:::{p['Bucket']}")]
    if service == "dynamodb":
        def table(name: str, index: str | None = None) -> str:
            arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
            return f"{arn}/index/{index}" if index else arn
        if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan"):
            return [(f"dynamodb:{op}", table(p["TableName"], p.get("IndexName")))]
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{op}", table(t)) for t in p["RequestItems"]]
        if op == "TransactWriteItems":
            return [(f"dynamodb:{TRANSACT[kind]}", table(body["TableName"]))
                    for item in p["TransactItems"] for kind, body in item.items()]
    return [(f"{service}:{op}", "?")]  # unknown: fails below, by name


def allowed(doc: dict[str, Any], action: str, resource: str) -> bool:
    for st in doc["Statement"]:
        if st["Effect"] == "Allow" and action in st["Action"] and any(
                fnmatchcase(resource, pattern) for pattern in st["Resource"]):
            return True
    return False


def test_a_whole_session_needs_nothing_the_policy_does_not_grant(fast: Harness) -> None:
    rt = fast.rt
    env = {"SEALSYNC_BUCKET": rt.settings.bucket, "SEALSYNC_TABLE": rt.settings.table,
           "SEALSYNC_QUEUE": "q"}
    text = json.dumps(policy.policy("sealsync", "test", env))
    for placeholder, value in {"${AWS::Partition}": "aws", "${AWS::Region}": REGION,
                               "${AWS::AccountId}": ACCOUNT}.items():
        text = text.replace(placeholder, value)
    doc = json.loads(text)

    seen: list[tuple[str, str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        seen.append((model.service_model.service_name, model.name, dict(params)))

    for client in (rt.s3, rt.dynamodb):  # calls and presigned URLs alike
        client.meta.events.register("provide-client-params.*.*", record)

    dev = fast.signup()
    file_id = new_id()
    up = fast.stage(dev, file_id, 0, b"manifest", (b"chunk",))
    on_commit_queue(sqs_event(json.dumps(s3_event(s3_record(up.key)))), None)
    assert fast.status(dev, up.upload_id)["status"] == "accepted"
    for path in (f"/v1/files/{file_id}", f"/v1/files/{file_id}/revisions",
                 "/v1/changes?cursor=0", f"/v1/accounts/{dev.user_id}/kdf"):
        assert fast.get(path, dev).status_code == 200, path
    assert fast.delete_file(dev, file_id, 1).status_code == 202
    fast.stage(dev, new_id(), 0, upload_chunks=False)  # left for the sweeper
    report = sweep(rt, now=time.time() + 10 * rt.settings.sweep_after_s)
    assert report.errors == 0 and report.finished

    ops = {(s, op) for s, op, _ in seen}
    assert {("s3", "CopyObject"), ("s3", "ListObjectsV2"), ("s3", "DeleteObject"),
            ("dynamodb", "TransactWriteItems"), ("dynamodb", "Query")} <= ops
    denied = sorted({f"{op} -> {action} on {res}" for service, op, p in seen
                     for action, res in needed(service, op, p)
                     if not allowed(doc, action, res)})
    assert denied == []
