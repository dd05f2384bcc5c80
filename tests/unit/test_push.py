"""Push, against moto in-process: the WebSocket handlers as Lambda invokes
them, the notices a commit sends, SNS mobile endpoints (one disabled when it
fails), and that no push failure touches a commit."""
from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID

import app as app_module
from chalicelib import push
from chalicelib.core import notices, tokens
from chalicelib.core.ids import new_id
from chalicelib.sweeper import sweep
from tests.harness import Device, Harness

API_ID = "abc123"


def ws_event(route: str, connection_id: str, *, token: str | None = None,
             header: bool = True, body: str | None = None) -> dict[str, Any]:
    """An API Gateway WebSocket event, as Lambda receives it."""
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    event: dict[str, Any] = {
        "requestContext": {"routeKey": route, "eventType": kind, "connectionId": connection_id,
                           "apiId": API_ID, "stage": "api", "messageDirection": "IN",
                           "domainName": f"{API_ID}.execute-api.us-east-1.amazonaws.com",
                           "requestId": secrets.token_hex(8), "connectedAt": 0},
        "isBase64Encoded": False}
    if token is not None and header:
        event["headers"] = {"Authorization": f"Bearer {token}"}
    elif token is not None:
        event["queryStringParameters"] = {"token": token}
    if body is not None:
        event["body"] = body
    return event


def connect(dev: Device, header: bool = True) -> str:
    conn = secrets.token_urlsafe(10)
    r = app_module.ws_connect(ws_event("$connect", conn, token=dev.token, header=header), None)
    assert r["statusCode"] == 200, r
    return conn


def connect_with_ticket(fast: Harness, dev: Device) -> str:
    """As a browser does: a one-time ticket from POST /v1/push/tickets in the query."""
    got = fast.post("/v1/push/tickets", {}, dev)
    assert got.status_code == 201, got.body
    conn = secrets.token_urlsafe(10)
    event = ws_event("$connect", conn)
    event["queryStringParameters"] = {"ticket": got.json_body["ticket"]}
    r = app_module.ws_connect(event, None)
    assert r["statusCode"] == 200, r
    return conn


def sent_to(conn: str) -> list[dict[str, Any]]:
    """What moto's management API received for a connection, as messages."""
    data = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].connections[
        conn].data.decode()
    out, i, dec = [], 0, json.JSONDecoder()
    while i < len(data):
        msg, i = dec.raw_decode(data, i)
        out.append(msg)
    return out


@pytest.fixture
def sns_apps(fast: Harness) -> Iterator[dict[str, str]]:
    sns = boto3.client("sns", region_name="us-east-1")
    apps = {p: sns.create_platform_application(Name=f"sealsync-{p}", Platform=kind,
                                               Attributes={})["PlatformApplicationArn"]
            for p, kind in (("apns", "APNS"), ("fcm", "GCM"))}
    fast.rt.settings = dataclasses.replace(fast.rt.settings, push_apps=apps)
    fast.rt.__dict__.pop("mobile", None)
    yield apps


# -- WebSocket handlers ----------------------------------------------------------
def test_connect_with_a_valid_token_registers_and_disconnect_forgets(fast: Harness) -> None:
    dev = fast.signup()
    by_header, by_query = connect(dev), connect_with_ticket(fast, dev)
    reg = fast.rt.registry
    assert reg.connection_owner(by_header) == (dev.user_id, dev.device_id)
    assert reg.connection_owner(by_query) == (dev.user_id, dev.device_id)
    live = reg.targets(dev.user_id, 0).connections
    assert {c.connection_id for c in live} == {by_header, by_query}
    assert {c.endpoint for c in live} == {
        f"https://{API_ID}.execute-api.us-east-1.amazonaws.com/api"}
    assert app_module.ws_disconnect(ws_event("$disconnect", by_header), None)[
        "statusCode"] == 200
    assert reg.connection_owner(by_header) is None
    assert [c.connection_id for c in reg.targets(dev.user_id, 0).connections] == [by_query]
    # a second disconnect (API Gateway may send one late) is harmless
    assert app_module.ws_disconnect(ws_event("$disconnect", by_header), None)[
        "statusCode"] == 200


@pytest.mark.parametrize("token", [None, "", "v1.garbage.mac", "x" * 5000])
def test_connect_without_a_valid_token_is_refused(fast: Harness, token: str | None) -> None:
    dev = fast.signup()
    conn = secrets.token_urlsafe(10)
    r = app_module.ws_connect(ws_event("$connect", conn, token=token), None)
    assert r["statusCode"] == 401 and json.loads(r["body"])["error"] == "unauthorized"
    forged = tokens.issue(b"k" * 32, dev.user_id, dev.device_id, 2**31, 60)
    assert app_module.ws_connect(ws_event("$connect", conn, token=forged), None)[
        "statusCode"] == 401
    expired = tokens.issue(fast.rt.settings.token_secret, dev.user_id, dev.device_id, 0, 1)
    assert app_module.ws_connect(ws_event("$connect", conn, token=expired), None)[
        "statusCode"] == 401
    assert fast.rt.registry.connection_owner(conn) is None


def test_ping_is_answered_and_bad_messages_get_an_error(fast: Harness) -> None:
    dev = fast.signup()
    conn = connect(dev)
    for body in ('{"action": "ping"}', "not json", '{"action": "rm -rf"}', "[]",
                 "x" * 10_000, None):
        r = app_module.ws_message(ws_event("$default", conn, body=body), None)
        assert r["statusCode"] == 200
    got = sent_to(conn)
    assert got[0] == {"type": "pong"}
    assert [m["error"] for m in got[1:]] == ["bad_request"] * 5
    # a message on a connection nobody registered is not answered
    assert app_module.ws_message(ws_event("$default", "stranger", body='{"action":"ping"}'),
                                 None)["statusCode"] == 410


def test_an_upload_the_sweeper_expires_is_pushed_to_its_device(fast: Harness) -> None:
    """No commit ever runs for a manifest that never came: the sweeper's
    rejection reaches a device that waits for pushes all the same."""
    dev = fast.signup()
    other = fast.add_device(dev.user_id, dev.auth_key, dev.account_seed)
    mine, theirs = connect(dev), connect(other)
    file_id = new_id()
    upload_id = fast.post("/v1/uploads", {"file_id": file_id, "base_revision": 0,
                                          "manifest_size": 8}, dev).json_body["upload_id"]
    assert sweep(fast.rt, now=time.time() + fast.rt.settings.sweep_after_s + 60).expired == [
        upload_id]
    got = sent_to(mine)
    assert len(got) == 1 and {k: got[0][k] for k in (
        "type", "upload_id", "file_id", "status", "base_revision", "reason")} == {
        "type": "upload", "upload_id": upload_id, "file_id": file_id, "status": "rejected",
        "base_revision": 0, "reason": "upload expired before its manifest arrived"}
    assert sent_to(theirs) == []  # nothing changed in the feed


# -- what a commit sends ---------------------------------------------------------
def test_commit_sends_the_result_to_the_uploader_and_the_cursor_to_others(
        fast: Harness) -> None:
    dev = fast.signup()
    other = fast.add_device(dev.user_id, dev.auth_key, dev.account_seed)
    stranger = fast.signup()
    mine, theirs, foreign = connect(dev), connect(other), connect(stranger)
    file_id = new_id()
    first = fast.stage(dev, file_id, 0)
    assert fast.commit(first.key).single.status == "accepted"
    loser = fast.stage(other, file_id, 0)
    assert fast.commit(loser.key).single.status == "conflict"

    got = sent_to(mine)
    assert got[0]["type"] == "upload" and got[0]["upload_id"] == first.upload_id
    assert (got[0]["status"], got[0]["revision"], got[0]["cursor"]) == ("accepted", 1, 1)
    assert got[0]["committed_ms"] > 0
    assert len(got) == 1  # a conflict moves no cursor: nothing for the other devices
    theirs_got = sent_to(theirs)
    assert theirs_got[0] == {"type": "changes", "cursor": 1,
                             "committed_ms": got[0]["committed_ms"]}
    assert theirs_got[1]["upload_id"] == loser.upload_id
    assert (theirs_got[1]["status"], theirs_got[1]["winner_revision"]) == ("conflict", 1)
    assert sent_to(foreign) == []  # another user hears nothing
    # the pushed result is what GET /v1/uploads/{id} says
    polled = fast.status(dev, first.upload_id)
    assert {k: v for k, v in got[0].items() if k in polled} == polled


def test_a_duplicate_event_pushes_nothing_twice(fast: Harness) -> None:
    dev = fast.signup()
    conn = connect(dev)
    up = fast.stage(dev, new_id(), 0)
    fast.commit(up.key)
    fast.rt.s3.put_object(Bucket=fast.rt.settings.bucket, Key=up.key, Body=b"replay")
    fast.commit(up.key)
    assert len(sent_to(conn)) == 1


class GoneClient:
    """The one thing moto cannot do: a connection that is gone (HTTP 410)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:  # noqa: N803
        self.calls.append(ConnectionId)
        raise ClientError({"Error": {"Code": "GoneException", "Message": ""},
                           "ResponseMetadata": {"HTTPStatusCode": 410}}, "PostToConnection")


def test_a_gone_connection_is_forgotten_and_the_commit_stands(fast: Harness) -> None:
    dev = fast.signup()
    conn = connect(dev)
    gone = GoneClient()
    fast.rt.__dict__["ws_sender"] = push.WsSender(lambda endpoint: gone, None)
    up = fast.stage(dev, new_id(), 0)
    assert fast.commit(up.key).single.status == "accepted"
    assert gone.calls == [conn]
    assert fast.rt.registry.connection_owner(conn) is None
    assert fast.rt.registry.targets(dev.user_id, 0).connections == []


def test_no_push_failure_fails_or_undoes_a_commit(fast: Harness) -> None:
    dev = fast.signup()
    connect(dev)

    class Broken:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("push is down")

    fast.rt.__dict__["ws_sender"] = Broken()
    up = fast.stage(dev, new_id(), 0)
    assert fast.commit(up.key).single.status == "accepted"
    fast.rt.__dict__["registry"] = Broken()  # even the registry unreadable
    second = fast.stage(dev, up.file_id, 1)
    assert fast.commit(second.key).single.status == "accepted"
    assert fast.status(dev, second.upload_id)["revision"] == 2
    assert fast.changes(dev)["cursor"] == 2


def test_expired_connections_are_not_sent_to(fast: Harness) -> None:
    dev = fast.signup()
    fast.rt.registry.add_connection(dev.user_id, dev.device_id, "old", "http://x", now=0)
    assert fast.rt.registry.targets(dev.user_id, 10**9).connections == []


# -- mobile push (SNS) -------------------------------------------------------------
def sns_endpoint_messages(arn: str) -> list[str]:
    from moto.sns.models import sns_backends

    endpoint = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].platform_endpoints[arn]
    return list(endpoint.messages.values())


def test_mobile_registration_and_data_only_publish(fast: Harness,
                                                   sns_apps: dict[str, str]) -> None:
    phone = fast.signup()
    tablet = fast.add_device(phone.user_id, phone.auth_key, phone.account_seed)
    r = fast.post("/v1/push/registrations", {"platform": "apns", "token": "a1" * 32}, phone)
    assert r.status_code == 201 and r.json_body == {
        "device_id": phone.device_id, "platform": "apns", "enabled": True}
    assert fast.post("/v1/push/registrations", {"platform": "fcm", "token": "fcm:" + "t" * 140},
                     tablet).status_code == 201
    phone_arn = fast.rt.registry.get_mobile(phone.user_id, phone.device_id).endpoint_arn
    tablet_arn = fast.rt.registry.get_mobile(phone.user_id, tablet.device_id).endpoint_arn
    up = fast.stage(phone, new_id(), 0)
    assert fast.commit(up.key).single.status == "accepted"

    (to_phone,) = sns_endpoint_messages(phone_arn)
    apns = json.loads(json.loads(to_phone)["APNS"])
    assert apns["aps"] == {"content-available": 1}  # silent: no alert, badge or sound
    assert apns["sealsync"]["upload_id"] == up.upload_id
    (to_tablet,) = sns_endpoint_messages(tablet_arn)
    fcm = json.loads(json.loads(to_tablet)["GCM"])
    assert set(fcm) == {"data"}  # data only: no "notification" block
    assert json.loads(fcm["data"]["sealsync"])["cursor"] == 1

    # registering again (same token) reuses the endpoint; deleting stops pushes
    assert fast.post("/v1/push/registrations", {"platform": "apns", "token": "a1" * 32},
                     phone).status_code == 201
    assert fast.rt.registry.get_mobile(phone.user_id, phone.device_id).endpoint_arn == phone_arn
    r = fast.delete("/v1/push/registrations", tablet)
    assert r.status_code == 200 and r.json_body["removed"] is True
    assert fast.rt.registry.get_mobile(phone.user_id, tablet.device_id) is None


@pytest.mark.parametrize("how", ["disabled by SNS", "deleted"])
def test_a_failing_endpoint_is_disabled_and_the_commit_stands(
        fast: Harness, sns_apps: dict[str, str], how: str) -> None:
    """SNS disables an endpoint when APNs/FCM reports its token dead; a publish
    then fails (EndpointDisabled), as it does for a deleted one (NotFound)."""
    dev = fast.signup()
    other = fast.add_device(dev.user_id, dev.auth_key, dev.account_seed)
    fast.post("/v1/push/registrations", {"platform": "fcm", "token": "dead-token-1"}, other)
    arn = fast.rt.registry.get_mobile(dev.user_id, other.device_id).endpoint_arn
    sns = boto3.client("sns", region_name="us-east-1")
    if how == "deleted":
        sns.delete_endpoint(EndpointArn=arn)
    else:
        sns.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})
    up = fast.stage(dev, new_id(), 0)
    assert fast.commit(up.key).single.status == "accepted"
    assert fast.rt.registry.mobile_enabled(dev.user_id, other.device_id) is False
    assert fast.rt.registry.targets(dev.user_id, 0).mobiles == []
    # a fresh registration of the device enables it again
    assert fast.post("/v1/push/registrations", {"platform": "fcm", "token": "fresh-token-2"},
                     other).status_code == 201
    assert fast.rt.registry.mobile_enabled(dev.user_id, other.device_id) is True
    second = fast.stage(dev, up.file_id, 1)
    assert fast.commit(second.key).single.status == "accepted"
    new_arn = fast.rt.registry.get_mobile(dev.user_id, other.device_id).endpoint_arn
    assert json.loads(json.loads(json.loads(sns_endpoint_messages(new_arn)[-1])["GCM"])[
        "data"]["sealsync"])["cursor"] == 2


@pytest.mark.parametrize("body", [
    {"platform": "windows", "token": "abcdefgh"}, {"platform": "apns", "token": "short"},
    {"platform": "apns", "token": "has spaces in it"}, {"platform": "apns"},
    {"platform": "apns", "token": "abcdefgh", "name": "my phone"}, {"token": 7}])
def test_bad_registrations_are_400(fast: Harness, sns_apps: dict[str, str],
                                   body: dict[str, Any]) -> None:
    dev = fast.signup()
    r = fast.post("/v1/push/registrations", body, dev)
    assert r.status_code == 400, r.body
    assert fast.rt.registry.get_mobile(dev.user_id, dev.device_id) is None


def test_unconfigured_platform_is_400_and_push_info_says_so(fast: Harness) -> None:
    dev = fast.signup()
    r = fast.post("/v1/push/registrations", {"platform": "fcm", "token": "abcdefgh"}, dev)
    assert r.status_code == 400 and "no fcm push" in r.json_body["message"]
    info = fast.get("/v1/push", dev)
    assert info.json_body == {"websocket_url": None, "mobile_platforms": []}


# -- messages carry no plaintext ----------------------------------------------------
def test_messages_hold_only_ids_states_and_numbers() -> None:
    rejected = {"upload_id": new_id(), "file_id": new_id(), "status": "rejected",
                "base_revision": 3, "reason": "too big"}
    result = notices.upload_result(rejected, cursor=None, committed_ms=5)
    assert set(result) == {"type", "upload_id", "file_id", "status", "base_revision",
                           "reason", "committed_ms"}
    accepted = notices.upload_result({"upload_id": new_id(), "file_id": new_id(),
                                      "status": "accepted", "base_revision": 0,
                                      "revision": 1}, cursor=9)
    assert notices.change_notice(accepted) == {"type": "changes", "cursor": 9}
    assert notices.change_notice(result) is None


# -- issue 15: no bearer token in the WebSocket query string -------------------------
def test_a_token_in_the_query_string_is_refused(fast: Harness) -> None:
    """Access logs keep query strings: a long-lived token must never travel there."""
    dev = fast.signup()
    conn = secrets.token_urlsafe(10)
    r = app_module.ws_connect(ws_event("$connect", conn, token=dev.token, header=False), None)
    assert r["statusCode"] == 401 and "query string is refused" in r["body"]
    assert fast.rt.registry.connection_owner(conn) is None


def test_a_connect_ticket_works_once_and_expires(fast: Harness) -> None:
    dev = fast.signup()
    ticket = fast.post("/v1/push/tickets", {}, dev).json_body["ticket"]

    def attempt(t: str) -> int:
        event = ws_event("$connect", secrets.token_urlsafe(10))
        event["queryStringParameters"] = {"ticket": t}
        return int(app_module.ws_connect(event, None)["statusCode"])

    assert attempt(ticket) == 200
    assert attempt(ticket) == 401  # spent
    assert attempt("x" * 43) == 401 and attempt("") == 401 and attempt("y" * 5000) == 401
    late = fast.post("/v1/push/tickets", {}, dev).json_body["ticket"]
    for key in fast.rt.redis.scan_iter("wst:*"):
        fast.rt.redis.delete(key)  # what the 60 s expiry does
    assert attempt(late) == 401
    assert not [k for k in fast.rt.redis.scan_iter("*") if ticket.encode() in k]  # hashed
    assert fast.post("/v1/push/tickets", {}, None).status_code == 401
