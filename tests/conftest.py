"""Fast fixtures: moto in-process and fakeredis, one fresh stack per test."""
from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib.config import Runtime, set_runtime
from local.resources import create_all
from tests.harness import Harness, settings


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
