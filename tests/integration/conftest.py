"""Integration fixtures: moto in server mode over HTTP and a real redis-server,
each started once per session on a free port; a fresh table, bucket and
Runtime for every test.

MotoServer serializes moto's DynamoDB requests, as real DynamoDB executes
each atomically (see local.moto_patches.serialize_moto_dynamodb).
"""
from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator

import pytest

from chalicelib.config import Runtime, set_runtime
from local.moto import MotoServer
from local.resources import create_all, create_table
from local.services import RedisServer, redis_server_path
from tests.harness import Harness, settings

RuntimeFactory = Callable[..., Runtime]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if redis_server_path() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server, or "
                    "`make test-tools`): integration tests need a real one")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_up(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's redis-server, for a test that stops it: started again
    afterwards (even when the test fails), so later tests find it up."""
    yield redis_server
    if redis_server.proc is None:
        redis_server.start()


def _close(rt: Runtime) -> None:
    for name in ("redis", "redis_blocking"):
        if name in rt.__dict__:
            rt.__dict__[name].close()
    for name in ("s3", "dynamodb"):
        if name in rt.__dict__:
            rt.__dict__[name].close()


@pytest.fixture
def make_rt(moto_server: MotoServer) -> Iterator[RuntimeFactory]:
    """Build Runtimes sharing this test's table and bucket (fresh names per
    test); keyword arguments override settings, e.g. SEALSYNC_LOCK_TTL_MS."""
    name = f"sealsync-it-{secrets.token_hex(6)}"
    built: list[Runtime] = []

    def make(**overrides: str) -> Runtime:
        env = {"SEALSYNC_AWS_ENDPOINT": moto_server.url, "SEALSYNC_TABLE": name,
               "SEALSYNC_BUCKET": name, **overrides}
        rt = Runtime(settings(**env))
        built.append(rt)
        return rt

    yield make
    for rt in built:
        with contextlib.suppress(Exception):
            _close(rt)


@pytest.fixture
def meta_rt(make_rt: RuntimeFactory) -> Runtime:
    """Only the DynamoDB table, for tests of the store alone (no Redis)."""
    rt = make_rt()
    create_table(rt.dynamodb, rt.settings.table)
    return rt


@pytest.fixture
def rt(make_rt: RuntimeFactory, redis_server: RedisServer) -> Iterator[Runtime]:
    rt = make_rt(SEALSYNC_REDIS_URL=redis_server.url)
    create_all(rt, queue=None)
    set_runtime(rt)
    yield rt
    set_runtime(None)


@pytest.fixture
def h(rt: Runtime) -> Iterator[Harness]:
    from chalice.test import Client

    from app import app

    with Client(app) as client:
        yield Harness(rt, client)
