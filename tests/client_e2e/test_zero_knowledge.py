"""Invariant 6 against the real stack: sync files whose names, folder names,
contents and device name carry marker strings, then read back every byte the
server side holds (every S3 object and key, every DynamoDB item, every Redis
key and value, the stack's stdout and stderr) and find none of them, nor the
device's key material. A positive control proves the scan sees the data."""
from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from sealsync_client.folder import init_folder

from tests.client_e2e.conftest import FAST, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def _aws(stack: StackProcess, service: str) -> Any:
    s = stack.state
    return boto3.client(service, endpoint_url=s["aws_endpoint"], region_name=s["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _flatten(obj: Any) -> Iterator[bytes]:
    if isinstance(obj, bytes | bytearray):
        yield bytes(obj)
    elif isinstance(obj, str):
        yield obj.encode()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flatten(k)
            yield from _flatten(v)
    elif isinstance(obj, list | tuple | set):
        for v in obj:
            yield from _flatten(v)
    else:
        yield str(obj).encode()


def server_side_bytes(stack: StackProcess) -> dict[str, list[bytes]]:
    s = stack.state
    s3 = _aws(stack, "s3")
    objects: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s["bucket"]):
        for o in page.get("Contents", []):
            objects.append(o["Key"].encode())
            objects.append(s3.get_object(Bucket=s["bucket"], Key=o["Key"])["Body"].read())
    items: list[bytes] = []
    for page in _aws(stack, "dynamodb").get_paginator("scan").paginate(TableName=s["table"]):
        for item in page["Items"]:
            items += list(_flatten(item))
    r = redis.Redis.from_url(s["redis_url"])
    values: list[bytes] = []
    for key in r.scan_iter(count=1000):
        values.append(key)
        kind = r.type(key).decode()
        read = {"string": lambda k: r.get(k), "list": lambda k: r.lrange(k, 0, -1),
                "hash": lambda k: r.hgetall(k), "set": lambda k: r.smembers(k),
                "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
                "stream": lambda k: r.xrange(k)}.get(kind)
        if read is not None:
            values += list(_flatten(read(key)))
    logs = [stack.stderr().encode(), "\n".join(stack.stdout_lines).encode()]
    return {"s3": objects, "dynamodb": items, "redis": values, "logs": logs,
            "mail": sent_mail(stack)}


def sent_mail(stack: StackProcess) -> list[bytes]:
    """Every message SES sent (moto server's record): subject, body, address."""
    import requests

    got = requests.get(stack.state["aws_endpoint"] + "/moto-api/data.json", timeout=10)
    return list(_flatten(got.json().get("ses", {})))


def test_no_name_content_or_key_reaches_the_server(stack: StackProcess, tmp_path: Path) -> None:
    tag = secrets.token_hex(6)
    name_marker, body_marker = f"zkNAME{tag}", f"zkBODY{tag}"
    dir_marker, device_marker = f"zkDIR{tag}", f"zkDEVICE{tag}"
    passphrase = f"zkPASS{tag} is long enough"
    address = f"zk-{tag}@example.com"
    a = init_folder(tmp_path / "a", stack.state["api"], passphrase, device_name=device_marker,
                    cost=FAST, email=address)
    b = init_folder(tmp_path / "b", stack.state["api"], passphrase, device_name="other",
                    join_user_id=a.config.user_id, cost=FAST,
                    secret_key=a.secret_key)
    try:
        small = f"secret {body_marker} inline\n".encode()
        big = b"".join(os.urandom(100_000) + body_marker.encode() for _ in range(30))
        (a.root / dir_marker).mkdir()
        (a.root / f"{name_marker}.txt").write_bytes(small)
        (a.root / dir_marker / f"{name_marker}.bin").write_bytes(big)
        (a.root / f"gone-{name_marker}.txt").write_bytes(small + b"x")
        settle(a, b)
        os.rename(a.root / f"{name_marker}.txt", a.root / dir_marker / f"moved-{name_marker}")
        os.remove(a.root / f"gone-{name_marker}.txt")
        settle(a, b)
        assert tree(b) == tree(a) and len(tree(a)) == 2

        secrets_hex = [a.keys.master.hex(), a.keys.root_folder_key().hex(),
                       a.keys.root_keyring().content.hex(), a.keys.auth_key()]
        assert a.secret_key is not None  # the second secret never reaches the server either
        secrets_hex += [a.secret_key.raw.hex(), a.secret_key.text()]
        markers = [name_marker, body_marker, dir_marker, device_marker, passphrase,
                   *secrets_hex]
        found = server_side_bytes(stack)
        assert sum(map(len, found["s3"])) > len(big)  # the scan saw the ciphertext
        for where, blobs in found.items():
            for marker in markers:
                needle = marker.encode()
                hits = [blob[:80] for blob in blobs if needle in blob or
                        needle.lower() in blob.lower()]
                assert not hits, f"{marker!r} found in {where}: {hits[:3]}"
        # Positive control: the same scan does find what the server may know.
        user = a.config.user_id.encode()
        assert any(user in blob for blob in found["s3"])
        # the big file went up in a pack: the scan read packs too
        assert any(blob.startswith(b"packs/" + user + b"/") for blob in found["s3"])
        assert any(user in blob for blob in found["dynamodb"])
        # ... and the mail the account got: welcome, and a notice per device
        assert sum(b"A new device was added" in blob for blob in found["mail"]) >= 2
        assert any(address.encode() in blob for blob in found["mail"])
    finally:
        a.close()
        b.close()
