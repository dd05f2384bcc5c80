"""The directory's conditional put against moto over HTTP (which, like
DynamoDB, executes each request atomically: local.moto_patches serializes them),
raced by real threads: one account id can land in one region only."""
from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest

from chalicelib import api
from chalicelib.config import Runtime
from chalicelib.core.errors import Conflict
from local import apiclient
from local.moto import MotoServer
from tests.regions_support import A, B, build_region

ROUNDS = 12


@pytest.fixture
def regions_over_http(moto_server: MotoServer) -> Iterator[tuple[Runtime, Runtime]]:
    suffix = "-" + secrets.token_hex(4)
    rts = tuple(build_region(r, lambda: fakeredis.FakeRedis(server=fakeredis.FakeServer()),
                             suffix, SEALSYNC_AWS_ENDPOINT=moto_server.url) for r in (A, B))
    yield rts  # type: ignore[misc]


def race(*calls: Any) -> list[Any]:
    """Run `calls` on threads released together; each result or exception."""
    gate = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the result under test
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_two_sign_ups_of_one_id_land_in_one_region_only(
        regions_over_http: tuple[Runtime, Runtime], monkeypatch: pytest.MonkeyPatch) -> None:
    rt_a, rt_b = regions_over_http
    ids = iter(secrets.token_hex(16) for _ in range(ROUNDS))
    winners = set()
    for _ in range(ROUNDS):
        rigged = next(ids)  # every id the server draws this round is the same one
        monkeypatch.setattr("chalicelib.regions.new_id", lambda rigged=rigged: rigged)

        def sign_up(rt: Runtime) -> Any:
            return api.create_account(rt, {
                "auth_key": secrets.token_hex(32), "kdf": "k",
                "signing_key": apiclient.public_key(secrets.token_bytes(32))})

        got = race(lambda: sign_up(rt_a), lambda: sign_up(rt_b))
        made = [g for g in got if isinstance(g, dict)]
        assert len(made) == 1, got
        assert sum(isinstance(g, Conflict) for g in got) == 1, got
        home = made[0]["region"]
        winners.add(home)
        assert made[0]["user_id"] == rigged
        assert rt_a.directory is not None and rt_a.directory.home(rigged) == home
        assert (rt_a.accounts.get(rigged) is not None) == (home == A)
        assert (rt_b.accounts.get(rigged) is not None) == (home == B)
    assert winners  # (either region may win a round; only one ever does)


def test_many_claims_of_one_id_one_wins(regions_over_http: tuple[Runtime, Runtime]) -> None:
    rt_a, rt_b = regions_over_http
    user = secrets.token_hex(16)
    dirs = [rt.directory for rt in (rt_a, rt_b) for _ in range(4)]
    assert all(d is not None for d in dirs)
    got = race(*[lambda d=d, i=i: d.claim(user, (A, B)[i % 2], None, i)  # type: ignore[union-attr]
                 for i, d in enumerate(dirs)])
    assert sorted(got) == [False] * 7 + [True]
    assert rt_b.directory is not None and rt_b.directory.home(user) in (A, B)
