"""The whole protocol over real HTTP against `python -m local.stack`: the
API on chalice's local server, blobs PUT to moto by presigned URL, commits
driven by S3 -> SQS -> the event pump -> the Lambda handler, wake-ups
through Redis."""
from __future__ import annotations

import re
import secrets
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.apiclient import Client, Device, chunk_id, new_file_id
from tests.e2e.conftest import StackProcess, pid_alive

pytestmark = pytest.mark.e2e

WAIT = 10  # long-poll seconds; a commit must answer well before this


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    out = fn(*args, **kwargs)
    return out, time.monotonic() - t0


def test_protocol_end_to_end(stack: StackProcess) -> None:
    api = Client(stack.state["api"])
    a = api.signup()
    b = api.add_device(a.user_id, a.auth_key, a.account_seed)  # a second device of the same user
    assert (b.user_id, b.device_id != a.device_id) == (a.user_id, True)

    # -- upload: presign, PUT chunks + manifest to moto, commit by event ------
    file_id = new_file_id()
    chunks = [secrets.token_bytes(4096), secrets.token_bytes(1000)]
    manifest = secrets.token_bytes(300)
    ticket = api.create_upload(a, file_id, 0, manifest, chunks)
    assert set(ticket["chunk_urls"]) == {chunk_id(c) for c in chunks}
    api.put_chunks(ticket, chunks)
    # A stored chunk is create-only: a second PUT of the same URL is refused.
    first_url = ticket["chunk_urls"][chunk_id(chunks[0])]
    assert api.put_blob(first_url, chunks[0], ticket["chunk_headers"]) == 412

    with ThreadPoolExecutor(2) as pool:
        # The long poll starts BEFORE the manifest exists, so only the
        # commit's wake-up can end it early.
        polling = pool.submit(timed, api.status, a, ticket["upload_id"], WAIT)
        feed_poll = pool.submit(timed, api.changes, b, 0, WAIT)
        time.sleep(0.5)
        assert not polling.done()
        assert api.put_blob(ticket["manifest_url"], manifest, ticket["manifest_headers"]) == 200
        put_done = time.monotonic()
        result, elapsed = polling.result()
        feed, feed_elapsed = feed_poll.result()
    woke_after = time.monotonic() - put_done
    assert result["status"] == "accepted" and result["revision"] == 1, result
    assert 0.5 <= elapsed < WAIT / 2, f"answered after {elapsed:.2f}s: not woken by the commit"
    assert woke_after < WAIT / 2
    # Device B was long-polling the feed and was woken by the same commit.
    assert feed_elapsed < WAIT / 2
    assert [(c["file_id"], c["revision"], c["deleted"]) for c in feed["changes"]] == [
        (file_id, 1, False)]

    # -- device B pulls what changed and downloads it ----------------------------
    cursor = feed["cursor"]
    assert api.changes(b, cursor)["changes"] == []
    head = api.get_file(b, file_id)
    assert (head["revision"], head["deleted"], head["device_id"]) == (1, False, a.device_id)
    assert head["size"] == len(manifest) + sum(map(len, chunks))
    got_manifest, got_chunks = api.download(head)
    assert got_manifest == manifest
    assert [c["id"] for c in head["chunks"]] == [chunk_id(c) for c in chunks]
    assert got_chunks == chunks

    # -- a race from the same base: exactly one wins --------------------------
    def edit(dev: Device) -> dict[str, Any]:
        staged = api.upload(dev, file_id, 1, secrets.token_bytes(200),
                            [chunks[0], secrets.token_bytes(500)])
        return api.status(dev, staged.upload_id, WAIT)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(edit, [a, b]))
    by_status = {r["status"]: r for r in results}
    assert set(by_status) == {"accepted", "conflict"}, results
    assert by_status["accepted"]["revision"] == 2
    assert by_status["conflict"]["winner_revision"] == 2
    assert "revision" not in by_status["conflict"]
    assert api.get_file(a, file_id)["revision"] == 2

    # -- delete: a tombstone revision, seen by the other device's long poll ------
    cursor = api.changes(b, cursor)["cursor"]
    with ThreadPoolExecutor(1) as pool:
        feed_poll = pool.submit(timed, api.changes, b, cursor, WAIT)
        time.sleep(0.3)
        deletion = api.delete(a, file_id, 2)
        assert deletion["status"] == "pending"
        done = api.status(a, deletion["upload_id"], WAIT)
        feed, feed_elapsed = feed_poll.result()
    assert (done["status"], done["revision"]) == ("accepted", 3), done
    assert feed_elapsed < WAIT / 2
    assert [(c["revision"], c["deleted"]) for c in feed["changes"]] == [(3, True)]
    tomb = api.get_file(b, file_id)
    assert (tomb["revision"], tomb["deleted"]) == (3, True)
    assert "manifest_url" not in tomb
    # Deleting again from the old base is a conflict, not a second tombstone.
    late = api.delete(b, file_id, 2)
    again = api.status(b, late["upload_id"], WAIT)
    assert (again["status"], again["winner_revision"]) == ("conflict", 3)

    # -- nobody else gets in ---------------------------------------------------
    base = stack.state["api"]
    assert requests.get(f"{base}/v1/changes", timeout=10).status_code in (401, 403)
    assert requests.get(f"{base}/v1/files/{file_id}", timeout=10,
                        headers={"authorization": "Bearer forged"}).status_code in (401, 403)
    other = api.signup()
    r = requests.get(f"{base}/v1/files/{file_id}", headers=other.headers, timeout=10)
    assert r.status_code == 404
    r = requests.get(f"{base}/v1/uploads/{ticket['upload_id']}", headers=other.headers,
                     timeout=10)
    assert r.status_code == 404
    assert api.changes(other)["changes"] == []


def test_event_quirks_are_harmless(stack: StackProcess) -> None:
    """moto's s3:TestEvent went through the pump at start-up; a multipart
    manifest yields two ObjectCreated events; a stray staging object has no
    upload record. None of it may break or block later commits."""
    state = stack.state
    s3 = boto3.client("s3", endpoint_url=state["aws_endpoint"], region_name=state["region"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    api = Client(state["api"])
    dev = api.signup()
    file_id = new_file_id()
    manifest = secrets.token_bytes(64 * 1024)
    ticket = api.create_upload(dev, file_id, 0, manifest)
    key = f"staging/{dev.user_id}/{ticket['upload_id']}"
    mpu = s3.create_multipart_upload(Bucket=state["bucket"], Key=key)
    etag = s3.upload_part(Bucket=state["bucket"], Key=key, UploadId=mpu["UploadId"],
                          PartNumber=1, Body=manifest)["ETag"]
    s3.complete_multipart_upload(Bucket=state["bucket"], Key=key, UploadId=mpu["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    stray = f"staging/{dev.user_id}/{new_file_id()}"
    s3.put_object(Bucket=state["bucket"], Key=stray, Body=b"no record")

    result = api.status(dev, ticket["upload_id"], WAIT)
    assert (result["status"], result["revision"]) == ("accepted", 1), result
    assert api.download(api.get_file(dev, file_id))[0] == manifest
    feed = api.changes(dev)["changes"]
    assert [(c["file_id"], c["revision"]) for c in feed] == [(file_id, 1)]  # once, not twice
    # The stray object is removed by the handler, not committed.
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and "Contents" in s3.list_objects_v2(
            Bucket=state["bucket"], Prefix=stray):
        time.sleep(0.1)
    assert "Contents" not in s3.list_objects_v2(Bucket=state["bucket"], Prefix=stray)
    # And the pipeline still commits afterwards.
    staged = api.upload(dev, file_id, 1, b"next version")
    assert api.status(dev, staged.upload_id, WAIT)["revision"] == 2


def _queue_drained(sqs: Any, url: str) -> bool:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return all(attrs.get(name, "0") == "0" for name in (
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed"))


def test_fakeredis_fallback_duplicate_events_and_clean_stop(tmp_path: Path) -> None:
    """A second stack: the embedded Redis (announced), every commit event
    delivered twice and late, then SIGTERM stops it all."""
    sp = StackProcess(tmp_path, "--fake-redis", "--duplicate-events", "1",
                      "--delay-events", "1")
    try:
        state = sp.wait_ready()
        assert state["redis"].startswith("fakeredis") and state["redis_pid"] is None
        assert "WARNING: redis-server is NOT in use" in sp.stderr()
        api = Client(state["api"])
        dev = api.signup()
        file_id = new_file_id()
        for base in range(3):
            staged = api.upload(dev, file_id, base, secrets.token_bytes(64))
            result = api.status(dev, staged.upload_id, WAIT)
            assert result.get("revision") == base + 1, (result, sp.stderr()[-3000:])

        sqs = boto3.client("sqs", endpoint_url=state["aws_endpoint"],
                           region_name=state["region"], aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        # Beyond the queue's 30 s visibility timeout: on a loaded machine a
        # batch may be redelivered once before the queue drains (seen in CI).
        deadline = time.monotonic() + 60
        while not _queue_drained(sqs, state["queue_url"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _queue_drained(sqs, state["queue_url"]), sp.stderr()[-3000:]  # duplicates too
        feed = api.changes(dev)["changes"]
        assert [c["revision"] for c in feed] == [1, 2, 3]  # no duplicate, no revert
        assert api.get_file(dev, file_id)["revision"] == 3

        api_port = int(state["api"].rsplit(":", 1)[1])
        sp.proc.send_signal(signal.SIGTERM)
        assert sp.proc.wait(20) == 0
        assert not sp.state_file.exists()
        assert sp.stdout_lines[-1] == "stopped"
        stats = re.search(r"event pump: (\d+) messages in \d+ batches, (\d+) failed "
                          r"batches, (\d+) duplicates sent", sp.stderr())
        assert stats, sp.stderr()[-2000:]
        # 3 manifests + the s3:TestEvent, each delivered twice; none failed.
        assert [int(g) for g in stats.groups()] == [8, 0, 4]
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", api_port), 1):
            pass
    finally:
        sp.kill()


def test_sweeper_runs_and_sigint_stops_everything(tmp_path: Path) -> None:
    """The sweeper ends an upload whose manifest never came (invariant 4).
    Ctrl-C: the stack exits 0, its redis-server is gone, the state file too;
    meanwhile a second stack refuses to take over the state file."""
    sp = StackProcess(tmp_path, "--sweep-interval", "0.5",
                      env={"SEALSYNC_SWEEP_AFTER_S": "1"})
    try:
        state = sp.wait_ready()
        api = Client(state["api"])
        dev = api.signup()
        abandoned = api.create_upload(dev, new_file_id(), 0, bytes(10))["upload_id"]
        result = api.status(dev, abandoned, WAIT)  # woken by the sweeper's verdict
        assert result["status"] == "rejected" and "expired" in result["reason"], result

        redis_pid = state["redis_pid"]
        if state["redis"] == "redis-server":
            assert isinstance(redis_pid, int) and pid_alive(redis_pid)
        # A second stack refuses to take over a live stack's state file.
        clash = StackProcess(tmp_path, name="clash")
        try:
            assert clash.proc.wait(60) == 1
            assert "another stack" in clash.stderr()
        finally:
            clash.kill()
        assert sp.state_file.exists()
        sp.proc.send_signal(signal.SIGINT)
        assert sp.proc.wait(20) == 0
        assert not sp.state_file.exists()
        if redis_pid is not None:
            deadline = time.monotonic() + 5
            while pid_alive(redis_pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not pid_alive(redis_pid), "redis-server outlived the stack"
    finally:
        sp.kill()
