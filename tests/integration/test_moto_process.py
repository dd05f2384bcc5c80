"""local.moto.MotoProcess: the local stack's moto in a child process serves
AWS calls, and never outlives the process that started it."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import boto3

from local.moto import REPO, MotoProcess
from local.services import free_port


def serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_serves_patched_moto_and_stops() -> None:
    moto = MotoProcess().start()
    try:
        db = boto3.client("dynamodb", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
        db.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
        db.put_item(TableName="t", Item={"pk": {"S": "a"}})
        got = db.query(TableName="t", KeyConditionExpression="pk = :p",
                       ExpressionAttributeValues={":p": {"S": "a"}})
        assert got["Items"] == [{"pk": {"S": "a"}}]
    finally:
        moto.stop()
    assert not serving(moto.port)


def test_exits_when_its_parent_dies() -> None:
    port = free_port()
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os; from local.moto import MotoProcess; "
         f"MotoProcess({port}).start(); os._exit(0)"],
        cwd=REPO, timeout=60, check=True)
    assert parent.returncode == 0
    deadline = time.monotonic() + 10
    while serving(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not serving(port), "moto outlived the process that started it"
