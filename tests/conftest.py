"""Fast fixtures: moto in-process and fakeredis, one fresh stack per test."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import fakeredis
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.config import Runtime, set_runtime
from local.resources import create_all, create_bucket, create_queue
from tests.billing_support import localstripe  # noqa: F401 - a fixture (localstripe server)
from tests.harness import Harness, settings


@pytest.fixture(autouse=True, scope="session")
def _no_real_keychain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keys the CLI remembers during tests (remember.py) go to a directory
    of this session, never to the keychain or ~/.local/share of whoever
    runs them; subprocesses inherit this environment."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    patch.setenv("SEALSYNC_REMEMBER_DIR", str(tmp_path_factory.mktemp("remembered")))
    yield
    patch.undo()


@pytest.fixture
def fast_rt() -> Iterator[Runtime]:
    with mock_aws():
        rt = Runtime(settings())
        server = fakeredis.FakeServer()
        rt.__dict__["redis"] = fakeredis.FakeRedis(server=server)
        rt.__dict__["redis_blocking"] = fakeredis.FakeRedis(server=server)
        create_all(rt, queue=None)
        set_runtime(rt)
        yield rt
        set_runtime(None)


@pytest.fixture
def fast(fast_rt: Runtime) -> Iterator[Harness]:
    from app import app

    with Client(app) as client:
        yield Harness(fast_rt, client)


EVENTS_BUCKET = "events-test-bucket"


@pytest.fixture
def s3_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any, str]]:
    """moto in-process: EVENTS_BUCKET sends its staging events to a queue, as
    local.resources wires them. Yields (s3 client, sqs client, queue url);
    the queue still holds the notification's s3:TestEvent."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        url, arn = create_queue(sqs, "events-test")
        create_bucket(s3, EVENTS_BUCKET, arn)
        yield s3, sqs, url
