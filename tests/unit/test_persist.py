"""local/persist.py: snapshots of moto's backends, restored through the AWS
API. moto in-process here (the snapshotter reads the same backends the
moto server process does); the whole stack across restarts and kill -9 is
tests/client_e2e/test_server_forgot.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.persist import FORMAT, SNAPSHOT, DataDir, SnapshotError, Snapshotter
from local.resources import create_bucket, create_table

REPO = Path(__file__).resolve().parents[2]
TABLE, BUCKET = "sealsync-local", "sealsync-local"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3, ddb = boto3.client("s3"), boto3.client("dynamodb")
        create_table(ddb, TABLE)
        create_bucket(s3, BUCKET)
        yield s3, ddb


ITEMS = [
    {"pk": {"S": "U#1"}, "sk": {"S": "account"}, "salt": {"B": b"\x00\xffsalt"},
     "n": {"N": "42"}, "m": {"M": {"ids": {"BS": [b"\x01", b"\x02"]}, "l": {"L": [
         {"S": "x"}, {"BOOL": True}, {"NULL": True}]}}}},
    {"pk": {"S": "F#1"}, "sk": {"S": "head"}, "rev": {"N": "3"}, "ss": {"SS": ["a", "b"]}},
]


def everything(s3: Any, ddb: Any) -> tuple[list[Any], dict[str, bytes]]:
    items = sorted(ddb.scan(TableName=TABLE)["Items"], key=lambda i: i["pk"]["S"])
    objects = {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
               for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    return items, objects


def fill(s3: Any, ddb: Any) -> None:
    for item in ITEMS:
        ddb.put_item(TableName=TABLE, Item=item)
    s3.put_object(Bucket=BUCKET, Key="chunks/u/abc", Body=os.urandom(300_000))
    s3.put_object(Bucket=BUCKET, Key="manifests/u/f/1", Body=b"sealed manifest")
    s3.put_object(Bucket=BUCKET, Key="empty", Body=b"")


def test_a_snapshot_restores_every_item_and_object(aws: tuple[Any, Any],
                                                   tmp_path: Path) -> None:
    s3, ddb = aws
    fill(s3, ddb)
    before = everything(s3, ddb)
    data = DataDir(tmp_path / "data")
    line = Snapshotter(data, threading.RLock()).take()
    assert "2 items, 3 objects (3 new, 0 dropped)" in line
    snap = json.loads((data.path / SNAPSHOT).read_text())
    assert snap["format"] == FORMAT and snap["version"] == 1

    # Empty again, as the next start of the stack finds moto.
    ddb.delete_table(TableName=TABLE)
    for key in before[1]:
        s3.delete_object(Bucket=BUCKET, Key=key)
    s3.delete_bucket(Bucket=BUCKET)
    create_table(ddb, TABLE)
    create_bucket(s3, BUCKET)
    assert everything(s3, ddb) == ([], {})
    assert "restored 2 items and 3 objects" in data.restore(s3, ddb)
    assert everything(s3, ddb) == before  # binary, sets, maps, lists, empty bodies


def test_snapshots_are_incremental_and_drop_what_is_gone(aws: tuple[Any, Any],
                                                         tmp_path: Path) -> None:
    s3, ddb = aws
    fill(s3, ddb)
    data = DataDir(tmp_path / "data")
    snapper = Snapshotter(data, threading.RLock())
    snapper.take()
    assert "(0 new, 0 dropped)" in snapper.take()  # unchanged objects are not read again
    s3.delete_object(Bucket=BUCKET, Key="chunks/u/abc")  # a staging object, say
    s3.put_object(Bucket=BUCKET, Key="chunks/u/def", Body=b"new")
    assert "(1 new, 1 dropped)" in snapper.take()
    # A new process (the next moto) knows the last snapshot's objects too.
    assert "(0 new, 0 dropped)" in Snapshotter(data, threading.RLock()).take()
    blobs = list((data.path / "objects").glob("*/*"))
    assert len(blobs) == 3


def test_tables_are_read_under_the_dynamodb_lock(aws: tuple[Any, Any],
                                                 tmp_path: Path) -> None:
    s3, ddb = aws
    fill(s3, ddb)
    lock = threading.RLock()
    snapper = Snapshotter(DataDir(tmp_path / "data"), lock)
    done = threading.Event()
    with lock:  # a DynamoDB request in progress
        t = threading.Thread(target=lambda: (snapper.take(), done.set()))
        t.start()
        assert not done.wait(0.3)  # the snapshot waits for it
    t.join(10)
    assert done.is_set()


@pytest.mark.parametrize("content", ['{"format": "sealsync-local-stack-snapshot", '
                                     '"version": 99}', '{"format": "other"}', "not json"])
def test_a_snapshot_it_cannot_read_is_refused_and_left_alone(tmp_path: Path,
                                                             content: str) -> None:
    data = DataDir(tmp_path)
    (tmp_path / SNAPSHOT).write_text(content)
    with pytest.raises(SnapshotError, match="not a snapshot this version can read"):
        data.load()
    assert (tmp_path / SNAPSHOT).read_text() == content


def test_the_stack_refuses_to_start_on_it(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / SNAPSHOT).write_text('{"format": "other"}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")}
    done = subprocess.run(
        [sys.executable, "-m", "local.stack", "--api-port", "0", "--data-dir",
         str(tmp_path / "data"), "--state-file", str(tmp_path / "s.json")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "not a snapshot this version can read" in done.stderr
    assert "--ephemeral" in done.stderr
    assert (tmp_path / "data" / SNAPSHOT).read_text() == '{"format": "other"}'


def test_one_data_directory_per_running_stack(tmp_path: Path) -> None:
    data = DataDir(tmp_path)
    data.claim(os.getpid(), lambda pid: True)
    with pytest.raises(SnapshotError, match=f"another stack \\(pid {os.getpid()}\\)"):
        data.claim(os.getpid() + 1, lambda pid: True)
    data.claim(os.getpid() + 1, lambda pid: False)  # its owner died: taken over
    data.release(os.getpid())  # not ours any more: left alone
    assert (tmp_path / "owner").read_text().strip() == str(os.getpid() + 1)
    data.release(os.getpid() + 1)
    assert not (tmp_path / "owner").exists()
