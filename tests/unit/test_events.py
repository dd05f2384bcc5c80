"""The event plumbing: S3 and SQS events in Lambda's shape, through the real
Chalice handlers, onto the commit pipeline. Foreign or malformed events are
ignored without raising; duplicates are no-ops; nothing reverts a head."""
from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from app import on_commit_queue, on_staging_object
from chalicelib.commit import (
    commit_keys,
    staging_keys_from_s3_event,
    staging_keys_from_sqs_body,
)
from chalicelib.core.ids import bundle_key, new_id, staging_key
from local.resources import create_queue
from tests.harness import Device, Harness, Pending


# -- Lambda's event shapes --------------------------------------------------------
def s3_record(key: str, name: str = "ObjectCreated:Put", bucket: str = "sealsync-test",
              encode: bool = True) -> dict[str, Any]:
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-01-01T00:00:00.000Z", "eventName": name,
        "userIdentity": {"principalId": "AWS:TEST"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "staging",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "O"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key) if encode else key, "size": 8,
                          "eTag": "0" * 32, "sequencer": "0A"}},
    }


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "handle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1",
                       "SenderId": "S", "ApproximateFirstReceiveTimestamp": "1"},
        "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sealsync-commits",
        "awsRegion": "us-east-1"} for body in bodies]}


TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-01-01T00:00:00Z",
              "Bucket": "sealsync-test", "RequestId": "R", "HostId": "H"}


def deliver_s3(key: str, name: str = "ObjectCreated:Put") -> None:
    """What Lambda does for a direct S3 notification."""
    on_staging_object(s3_event(s3_record(key, name)), None)


def deliver_sqs(*keys: str) -> None:
    """What Lambda does for S3 -> SQS: one message per S3 event."""
    on_commit_queue(sqs_event(*(json.dumps(s3_event(s3_record(k))) for k in keys)), None)


def snapshot(h: Harness, dev: Device, file_id: str) -> dict[str, Any]:
    head = h.head(dev, file_id)
    if head is not None:
        head = {k: v for k, v in head.items() if k not in ("manifest_url", "chunks")}
    return {"head": head, "feed": h.changes(dev)["changes"]}


# -- parsing: malformed input yields nothing ---------------------------------------
MALFORMED_EVENTS: list[Any] = [
    None, "text", 5, [], {}, TEST_EVENT,
    {"Records": None}, {"Records": "abc"}, {"Records": 5}, {"Records": {"k": "v"}},
    {"Records": [None, 5, "x", [], {}]},
    {"Records": [{"eventName": "ObjectCreated:Put"}]},
    {"Records": [{"eventName": "ObjectCreated:Put", "s3": None}]},
    {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {}}}]},
    {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": 5}}}]},
    {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": None}}}]},
    {"Records": [{"eventName": "ObjectCreated:Put", "s3": "staging/a/b"}]},
    {"Records": [{"s3": {"object": {"key": "staging/a/b"}}}]},  # no eventName
    {"Records": [{"eventName": "ObjectRemoved:Delete",
                  "s3": {"object": {"key": "staging/a/b"}}}]},
    {"Records": [{"eventName": "s3:TestEvent", "s3": {"object": {"key": "staging/a/b"}}}]},
]


@pytest.mark.parametrize("event", MALFORMED_EVENTS)
def test_malformed_s3_events_yield_no_keys(event: Any) -> None:
    assert staging_keys_from_s3_event(event) == []
    assert staging_keys_from_sqs_body(json.dumps(event)) == []


@pytest.mark.parametrize("body", [
    "", "not json", "{", "{'Records': []}", "[" * 100_000, "null", "[]", '"Records"', "42",
])
def test_malformed_sqs_bodies_yield_no_keys(body: str) -> None:
    assert staging_keys_from_sqs_body(body) == []


def test_good_records_survive_bad_neighbours() -> None:
    event = {"Records": [None, s3_record("staging/a/b"), {"eventName": "ObjectCreated:Put"},
                         s3_record("staging/c/d", "ObjectRemoved:Delete"),
                         s3_record("staging/e/f", "ObjectCreated:CompleteMultipartUpload")]}
    assert staging_keys_from_s3_event(event) == ["staging/a/b", "staging/e/f"]
    assert staging_keys_from_sqs_body(json.dumps(event)) == ["staging/a/b", "staging/e/f"]


@pytest.mark.parametrize(("raw", "key"), [
    ("staging%2Fab%2Fcd", "staging/ab/cd"),  # moto encodes the slashes
    ("staging/ab/cd", "staging/ab/cd"),  # AWS leaves them
    ("staging/a+b/c%2Bd", "staging/a b/c+d"),  # '+' is a space; %2B is a '+'
    ("staging%2F..%2Fchunks%2Fx", "staging/../chunks/x"),
])
def test_keys_are_url_decoded(raw: str, key: str) -> None:
    assert staging_keys_from_s3_event(s3_event(s3_record(raw, encode=False))) == [key]


def test_malformed_events_through_the_real_handlers_do_not_raise(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    bodies = [json.dumps(e) for e in MALFORMED_EVENTS] + ["not json", "[" * 100_000]
    on_commit_queue(sqs_event(*bodies), None)
    assert fast.status(dev, up.upload_id)["status"] == "pending"
    # A good message in the same batch still commits.
    on_commit_queue(sqs_event("not json", json.dumps(s3_event(s3_record(up.key)))), None)
    assert fast.status(dev, up.upload_id)["status"] == "accepted"


# -- keys that are not ours to commit ---------------------------------------------------
def test_foreign_keys_are_ignored_and_change_nothing(fast: Harness) -> None:
    a = fast.signup()
    file_id = new_id()
    first = fast.stage(a, file_id, 0, b"manifest one", (b"chunk",))
    deliver_s3(first.key)
    pending = fast.stage(a, file_id, 1, b"manifest two")
    before = snapshot(fast, a, file_id)
    manifest_key = bundle_key(a.user_id, first.upload_id)  # a batch of one's bundle
    assert fast.rt.blobs.size(manifest_key) == len(b"manifest one")
    s3, bucket = fast.rt.s3, fast.rt.settings.bucket
    chunk = next(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="chunks/")[
        "Contents"])
    foreign = [
        chunk, manifest_key,  # live data a head points at: must survive
        f"{pending.key}/extra", f"staging/{a.user_id}/{pending.upload_id}/",
        f"staging/not-hex/{pending.upload_id}", f"staging/{a.user_id.upper()}/{pending.upload_id}",
        f"staging/{a.user_id}", f"staging/{a.user_id}/../{a.user_id}/{pending.upload_id}",
        f"other/{a.user_id}/{pending.upload_id}", f"/{pending.key}",
    ]
    for key in foreign:
        if fast.rt.blobs.size(key) is None:
            s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 12)
    for key in foreign:
        deliver_s3(key)
        deliver_sqs(key)
        outcome = commit_keys(fast.rt, [key])
        assert [o.status for o in outcome] == ["ignored"], key
    assert fast.rt.blobs.size(chunk) == len(b"chunk")
    assert s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read() == b"manifest one"
    assert snapshot(fast, a, file_id) == before
    assert fast.status(a, pending.upload_id)["status"] == "pending"
    deliver_s3(pending.key)  # the real key still commits
    assert fast.status(a, pending.upload_id)["revision"] == 2


def test_a_key_under_one_user_naming_anothers_upload_is_ignored(fast: Harness) -> None:
    a, b = fast.signup(), fast.signup()
    b_file = new_id()
    b_up = fast.stage(b, b_file, 0, b"b's manifest")
    hijack = staging_key(a.user_id, b_up.upload_id)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=hijack, Body=b"a's bytes")
    deliver_sqs(hijack)
    deliver_s3(hijack)
    assert commit_keys(fast.rt, [hijack])[0].status == "ignored"
    assert fast.rt.blobs.size(hijack) is None  # removed, it cannot linger
    assert fast.status(b, b_up.upload_id)["status"] == "pending"
    assert fast.head(b, b_file) is None and fast.head(a, b_file) is None
    assert fast.changes(a)["changes"] == [] and fast.changes(b)["changes"] == []
    deliver_sqs(b_up.key)
    assert fast.status(b, b_up.upload_id)["status"] == "accepted"
    head = fast.head(b, b_file)
    assert head and head["revision"] == 1 and head["device_id"] == b.device_id
    assert fast.manifest(b, b_file) == b"b's manifest"


# -- the real handlers commit, once --------------------------------------------------------
def _committed_once(h: Harness, dev: Device, up: Pending) -> None:
    st = h.status(dev, up.upload_id)
    assert (st["status"], st["revision"]) == ("accepted", up.base + 1)
    feed = h.changes(dev)["changes"]
    assert [(c["file_id"], c["revision"]) for c in feed].count((up.file_id, up.base + 1)) == 1
    assert h.rt.blobs.size(up.key) is None


def test_on_staging_object_commits_and_a_duplicate_is_a_no_op(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0, b"manifest", (b"c1", b"c2"))
    on_staging_object(s3_event(s3_record(up.key, encode=False)), None)
    _committed_once(fast, dev, up)
    before = snapshot(fast, dev, up.file_id)
    deliver_s3(up.key)
    assert snapshot(fast, dev, up.file_id) == before
    _committed_once(fast, dev, up)


def test_on_commit_queue_commits_and_a_duplicate_is_a_no_op(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    message = json.dumps(s3_event(s3_record(up.key)))
    on_commit_queue(sqs_event(message, message), None)  # duplicate within a batch
    _committed_once(fast, dev, up)
    before = snapshot(fast, dev, up.file_id)
    on_commit_queue(sqs_event(message), None)  # and redelivered later
    assert snapshot(fast, dev, up.file_id) == before


def test_a_late_duplicate_never_reverts_a_newer_head(fast: Harness) -> None:
    dev = fast.signup()
    file_id = new_id()
    one = fast.stage(dev, file_id, 0, b"one")
    deliver_sqs(one.key)
    two = fast.stage(dev, file_id, 1, b"two")
    deliver_sqs(two.key)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=one.key, Body=b"one")
    deliver_sqs(one.key)
    deliver_s3(one.key)
    head = fast.head(dev, file_id)
    assert head and head["revision"] == 2
    assert [c["revision"] for c in fast.changes(dev)["changes"]] == [1, 2]


def test_multipart_put_and_complete_events_commit_once(fast: Harness) -> None:
    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0)
    deliver_sqs(up.key)
    on_staging_object(
        s3_event(s3_record(up.key, "ObjectCreated:CompleteMultipartUpload")), None)
    _committed_once(fast, dev, up)
    # the other order, on a second upload, through one SQS batch
    up2 = fast.stage(dev, up.file_id, 1)
    on_commit_queue(sqs_event(
        json.dumps(s3_event(s3_record(up2.key, "ObjectCreated:CompleteMultipartUpload"))),
        json.dumps(s3_event(s3_record(up2.key, "ObjectCreated:Put")))), None)
    _committed_once(fast, dev, up2)


def test_moto_s3_to_sqs_notifications_end_to_end(fast: Harness) -> None:
    """The real notification bodies moto sends (a TestEvent first, URL-encoded
    keys, a multipart upload's events), fed to the SQS handler in Lambda's shape."""
    rt, bucket = fast.rt, fast.rt.settings.bucket
    sqs = rt._boto("sqs")
    url, arn = create_queue(sqs, "sealsync-commits")
    rt.s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "staging/"}]}}}]})

    def drain() -> list[str]:
        bodies: list[str] = []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
            if not got.get("Messages"):
                return bodies
            for m in got["Messages"]:
                bodies.append(m["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    setup = drain()
    assert all(staging_keys_from_sqs_body(b) == [] for b in setup)  # the TestEvent

    dev = fast.signup()
    up = fast.stage(dev, new_id(), 0, b"manifest " * 4)
    # The same manifest again as a multipart upload (a client retrying in parts).
    mp = rt.s3.create_multipart_upload(Bucket=bucket, Key=up.key)
    part = rt.s3.upload_part(Bucket=bucket, Key=up.key, UploadId=mp["UploadId"],
                             PartNumber=1, Body=b"manifest " * 4)
    rt.s3.complete_multipart_upload(
        Bucket=bucket, Key=up.key, UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    bodies = drain()
    keys = [k for b in bodies for k in staging_keys_from_sqs_body(b)]
    assert len(keys) >= 2 and set(keys) == {up.key}
    assert any(quote(up.key, safe="") in b for b in bodies)  # moto encoded it
    on_commit_queue(sqs_event(*bodies), None)
    _committed_once(fast, dev, up)
    assert drain() == []  # the pipeline wrote nothing back under staging/
