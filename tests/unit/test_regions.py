"""Home regions through the real app, two moto regions in-process: sign-up
lands where the user picked, any region sends a client home (421), and a
region holding a replica serves reads (never writes) while the home is down."""
from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from urllib.parse import urlparse

import fakeredis
import pytest
from chalice.test import Client
from moto import mock_aws

from chalicelib import regions
from chalicelib.config import set_runtime
from local import apiclient
from local.replicate import replicate_region
from tests.harness import BatchItem
from tests.regions_support import URLS, A, B, RegionHarness, build_region, with_down


@pytest.fixture
def two() -> Iterator[tuple[RegionHarness, RegionHarness]]:
    from app import app

    with mock_aws():
        rt_a = build_region(A, lambda: fakeredis.FakeRedis(server=fakeredis.FakeServer()))
        rt_b = build_region(B, lambda: fakeredis.FakeRedis(server=fakeredis.FakeServer()))
        with Client(app) as client:
            yield RegionHarness(rt_a, client), RegionHarness(rt_b, client)
        set_runtime(None)


def signup_body(**extra: str) -> dict[str, str]:
    return {"auth_key": secrets.token_hex(32), "kdf": "test",
            "signing_key": apiclient.public_key(secrets.token_bytes(32)), **extra}


def test_sign_up_for_b_through_a_is_sent_to_b_and_lands_there(two: tuple[RegionHarness,
                                                                         RegionHarness]) -> None:
    a, b = two
    body = signup_body(region=B)
    r = a.post("/v1/accounts", body)
    assert r.status_code == 421, r.body
    assert r.json_body == {"error": "wrong_region", "region": B, "home": URLS[B],
                           "message": f"this account lives in region {B}: use {URLS[B]}"}
    r = b.post("/v1/accounts", body)  # the client follows, once
    assert r.status_code == 201, r.body
    assert r.json_body["region"] == B
    user = r.json_body["user_id"]
    assert b.rt.accounts.get(user) is not None
    assert a.rt.accounts.get(user) is None  # nothing was written in A
    assert a.rt.directory is not None and a.rt.directory.home(user) == B


def test_default_region_is_the_one_asked(two: tuple[RegionHarness, RegionHarness]) -> None:
    a, _ = two
    r = a.post("/v1/accounts", signup_body())
    assert r.status_code == 201 and r.json_body["region"] == A
    assert a.rt.directory is not None and a.rt.directory.home(r.json_body["user_id"]) == A


@pytest.mark.parametrize("region", ["mars-north-1", "", 3, None])
def test_unknown_region_at_sign_up_is_a_400(two: tuple[RegionHarness, RegionHarness],
                                           region: object) -> None:
    a, _ = two
    body: dict[str, object] = {**signup_body(), "region": region}
    if region is None:
        body["region"] = {"name": B}
    r = a.post("/v1/accounts", body)
    assert r.status_code == 400, r.body
    assert "region must be one of: eu-west-1, us-east-1" in r.json_body["message"]


def test_a_b_client_pointed_at_a_is_sent_home_on_every_route(
        two: tuple[RegionHarness, RegionHarness]) -> None:
    a, b = two
    dev = b.signup()
    for r in (a.get("/v1/changes?cursor=0", dev),
              a.post("/v1/batches", {"entries": []}, dev),
              a.get(f"/v1/accounts/{dev.user_id}/kdf", None),
              a.post("/v1/tokens", {"user_id": dev.user_id, "device_id": dev.device_id,
                                    "auth_key": dev.auth_key}, None)):
        assert r.status_code == 421, r.body
        assert r.json_body["home"] == URLS[B] and r.json_body["region"] == B
    # ... and then talks to B directly: a version commits there
    item = BatchItem(secrets.token_hex(16), 0)
    batch = b.stage_batch(dev, [item])
    b.commit(batch.key)
    assert b.batch(dev, batch.batch_id)["entries"][0]["status"] == "accepted"
    assert b.changes(dev)["changes"][0]["file_id"] == item.file_id


def test_a_home_is_looked_up_once_per_warm_container(
        two: tuple[RegionHarness, RegionHarness], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two
    dev = b.signup()
    assert a.rt.directory is not None
    calls: list[str] = []
    real = a.rt.directory.home

    def counted(user_id: str) -> str | None:
        calls.append(user_id)
        return real(user_id)

    monkeypatch.setattr(a.rt.directory, "home", counted)
    for _ in range(5):
        assert a.get("/v1/changes?cursor=0", dev).status_code == 421
    assert calls == [dev.user_id]
    assert regions.home_of(a.rt, dev.user_id) == B and len(calls) == 1


def test_a_single_region_deployment_has_no_directory(fast_rt: object) -> None:
    from chalicelib.config import Runtime

    assert isinstance(fast_rt, Runtime)
    assert fast_rt.directory is None and not fast_rt.settings.regions.multi
    assert regions.serving(fast_rt, secrets.token_hex(16), write=True) is fast_rt


def test_home_down_reads_come_from_the_replica_and_writes_are_refused(
        two: tuple[RegionHarness, RegionHarness]) -> None:
    a, b = two
    dev = a.signup()
    item = BatchItem(secrets.token_hex(16), 0, chunks=(b"chunk-" + secrets.token_bytes(40),))
    batch = a.stage_batch(dev, [item])
    a.commit(batch.key)
    assert a.batch(dev, batch.batch_id)["entries"][0]["status"] == "accepted"
    objects, items = replicate_region(a.rt, b.rt)  # CRR and the global table, emulated
    assert objects >= 2 and items > 0

    # While A is up, B sends A's client home.
    assert b.get("/v1/changes?cursor=0", dev).status_code == 421
    # The operator declares A down in B (SEALSYNC_REGIONS_DOWN=eu-west-1).
    b.rt = with_down(b.rt, A)
    assert b.changes(dev)["changes"][0]["file_id"] == item.file_id
    r = b.get(f"/v1/files/{item.file_id}", dev)
    assert r.status_code == 200, r.body
    url = urlparse(r.json_body["manifest_url"])
    bucket, key = url.path.lstrip("/").split("/", 1)
    assert bucket == "sealsync-eu-replica"  # presigned against the replica bucket in B
    got = b.rt.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    at = r.json_body.get("manifest_range", {"offset": 0, "length": len(got)})
    assert got[at["offset"]:at["offset"] + at["length"]] == item.manifest
    token = b.post("/v1/tokens", {"user_id": dev.user_id, "device_id": dev.device_id,
                                  "auth_key": dev.auth_key}, None)
    assert token.status_code == 201, token.body  # a device can still log in to read

    for r in (b.post("/v1/batches", {"entries": [BatchItem(secrets.token_hex(16), 0).body()]},
                     dev),
              b.delete(f"/v1/files/{item.file_id}?base_revision=1&signature=00", dev),
              b.post("/v1/devices", {"user_id": dev.user_id, "auth_key": dev.auth_key,
                                     **apiclient.enrolment(dev.user_id, dev.account_seed,
                                                           secrets.token_bytes(32))}, None)):
        assert r.status_code == 503, r.body
        assert r.json_body["error"] == "read_only"
        assert f"home region {A} is unavailable" in r.json_body["message"]
        assert r.headers["Retry-After"] == "300"
    # nothing was written into the replica table by those refusals
    assert b.rt.dynamodb.scan(TableName="sealsync-eu")["Count"] == items
    # B's own accounts are unaffected
    own = b.signup()
    assert b.changes(own)["changes"] == []


def test_every_documented_region_answer_is_real_and_valid(
        two: tuple[RegionHarness, RegionHarness]) -> None:
    """Each route's documented 421 and read-only 503 (chalicelib/openapi.json),
    produced and validated against the document: A's device asks B, then B
    serves A's account while A is declared down."""
    from tests.openapi_support import CheckedHTTP, operations, region_statuses

    a, b = two
    dev = a.signup()
    http = CheckedHTTP(b.http.http)
    json_type = {"content-type": "application/json"}
    enrol = {"user_id": dev.user_id, "auth_key": dev.auth_key,
             **apiclient.enrolment(dev.user_id, dev.account_seed, secrets.token_bytes(32))}
    public = {("/v1/accounts", "post"): signup_body(region=A),
              ("/v1/devices", "post"): enrol,
              ("/v1/tokens", "post"): {"user_id": dev.user_id, "device_id": dev.device_id,
                                       "auth_key": dev.auth_key}}

    def drive(status: str) -> None:
        for path, method, op in operations():
            if (path, method, status) not in region_statuses():
                continue
            concrete = path.replace("{user_id}", dev.user_id)
            concrete = re.sub(r"\{[^/]+\}", secrets.token_hex(16), concrete)
            body = public.get((path, method), {})
            headers = json_type if op.get("security") == [] else dev.headers
            set_runtime(b.rt)
            http.request(method.upper(), concrete, headers=headers, body=json.dumps(body))

    drive("421")
    replicate_region(a.rt, b.rt)  # the device is known to the replica
    b.rt = with_down(b.rt, A)
    drive("503")  # writes: read_only
    assert b.rt.directory is not None

    def unreachable(**kwargs: object) -> None:
        from botocore.exceptions import EndpointConnectionError
        raise EndpointConnectionError(endpoint_url="https://dynamodb.test")

    b.rt.directory.reader = b.rt.directory.writer = _Broken(unreachable)
    b.rt.__dict__.pop("homes", None)  # a cold container (the cached property)
    public[("/v1/accounts", "post")] = signup_body()  # here, so it claims an id
    drive("503")  # every region-aware route: unavailable
    assert region_statuses() - http.seen == set(), "documented but never produced"


class _Broken:
    """A DynamoDB client whose every call fails as `fail` does."""

    def __init__(self, fail: Callable[..., None]) -> None:
        self.fail = fail

    def __getattr__(self, name: str) -> Callable[..., None]:
        return self.fail


def test_a_directory_that_cannot_be_reached_is_a_503_to_retry(
        two: tuple[RegionHarness, RegionHarness], monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import EndpointConnectionError

    a, _ = two
    dev = a.signup()
    assert a.rt.directory is not None

    def down(**kwargs: object) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com")

    monkeypatch.setattr(a.rt.directory.reader, "get_item", down)
    monkeypatch.setattr(a.rt.directory.writer, "get_item", down)
    monkeypatch.setattr(a.rt.directory.writer, "put_item", down)
    a.rt.__dict__.pop("homes", None)  # a cold container (the cached property)
    for r in (a.get("/v1/changes?cursor=0", dev), a.post("/v1/accounts", signup_body()),
              a.post("/v1/tokens", {"user_id": dev.user_id, "device_id": dev.device_id,
                                    "auth_key": dev.auth_key}, None)):
        assert r.status_code == 503, r.body
        assert r.json_body == {"error": "unavailable",
                               "message": "the account directory is unavailable; try again"}


def test_moving_a_home_is_conditional_and_noticed_when_the_cache_expires(
        two: tuple[RegionHarness, RegionHarness], monkeypatch: pytest.MonkeyPatch) -> None:
    """The runbook's last step (docs/OPERATIONS.md): the directory entry moves
    only from the home it names, and a warm container follows within
    CACHE_TTL_S."""
    a, b = two
    dev = a.signup()
    assert a.changes(dev)["changes"] == []  # at home in A, and cached there
    assert a.rt.directory is not None
    assert not a.rt.directory.move(dev.user_id, B, A, URLS[A], 1)  # not its home
    assert a.rt.directory.move(dev.user_id, A, B, URLS[B], 2)
    assert a.rt.directory.home(dev.user_id) == B
    assert a.get("/v1/changes?cursor=0", dev).status_code == 200  # the cache still says A
    clock = regions.time.monotonic() + regions.CACHE_TTL_S + 1
    monkeypatch.setattr(regions.time, "monotonic", lambda: clock)
    moved = a.get("/v1/changes?cursor=0", dev)
    assert moved.status_code == 421 and moved.json_body["home"] == URLS[B]
