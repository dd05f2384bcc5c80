"""The local WebSocket gateway over real sockets: Lambda-shaped events to the
handlers, a refused $connect, and the management API answering boto3 as API
Gateway does (including 410 GoneException, which moto cannot simulate)."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chalice.app import WebsocketEvent
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from chalicelib.push import Gone, WsSender
from local.websocket import LocalWebsocketGateway


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.disconnected = threading.Event()

    def connect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._keep(event)
        ok = (event.get("queryStringParameters") or {}).get("ticket") == "good"
        return {"statusCode": 200} if ok else {"statusCode": 401, "body": "no"}

    def message(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._keep(event)
        return {"statusCode": 200}

    def disconnect(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self._keep(event)
        self.disconnected.set()
        return {"statusCode": 200}

    def _keep(self, event: dict[str, Any]) -> None:
        WebsocketEvent(event, None)  # the shape Chalice parses
        with self.lock:
            self.events.append(event)

    def routes(self) -> list[str]:
        return [e["requestContext"]["routeKey"] for e in self.events]


@pytest.fixture
def gateway() -> Iterator[tuple[LocalWebsocketGateway, Recorder]]:
    rec = Recorder()
    gw = LocalWebsocketGateway().start(rec.connect, rec.message, rec.disconnect)
    yield gw, rec
    gw.stop()


def sender(gw: LocalWebsocketGateway) -> WsSender:
    def client(endpoint: str) -> Any:
        return boto3.session.Session().client(
            "apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing")
    return WsSender(client, gw.management_url)


def test_events_sends_and_gone(gateway: tuple[LocalWebsocketGateway, Recorder]) -> None:
    gw, rec = gateway
    out = sender(gw)
    with connect(gw.url + "/?ticket=good") as ws:
        ws.send(json.dumps({"action": "ping"}))
        first = rec.events[0]
        cid = first["requestContext"]["connectionId"]
        assert first["requestContext"]["eventType"] == "CONNECT"
        assert first["requestContext"]["apiId"] == "local"
        out.send(out.endpoint(first["requestContext"], "us-east-1"), cid, b'{"n": 1}')
        out.send(gw.management_url, cid, b'{"n": 2}')
        assert [json.loads(ws.recv(5)) for _ in range(2)] == [{"n": 1}, {"n": 2}]
    assert rec.disconnected.wait(5)
    assert rec.routes() == ["$connect", "$default", "$disconnect"]
    assert json.loads(rec.events[1]["body"]) == {"action": "ping"}
    assert {e["requestContext"]["connectionId"] for e in rec.events} == {cid}
    with pytest.raises(Gone):  # closed now: API Gateway's 410 GoneException
        out.send(gw.management_url, cid, b"{}")
    with pytest.raises(Gone):
        out.send(gw.management_url, "never-existed", b"{}")


def test_a_refused_connect_never_opens(gateway: tuple[LocalWebsocketGateway, Recorder]
                                       ) -> None:
    gw, rec = gateway
    with pytest.raises(InvalidStatus) as err:
        connect(gw.url + "/?ticket=bad")
    assert err.value.response.status_code == 401
    assert rec.routes() == ["$connect"]  # no $disconnect for what never opened


def test_delete_connection_closes_the_socket(
        gateway: tuple[LocalWebsocketGateway, Recorder]) -> None:
    gw, rec = gateway
    client = boto3.client("apigatewaymanagementapi", endpoint_url=gw.management_url,
                          region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    with connect(gw.url + "/?ticket=good") as ws:
        cid = rec.events[0]["requestContext"]["connectionId"]
        assert "ConnectedAt" in client.get_connection(ConnectionId=cid)
        client.delete_connection(ConnectionId=cid)
        assert rec.disconnected.wait(5)
        with pytest.raises(Exception):  # noqa: B017 - closed by the server
            ws.recv(5)
    with pytest.raises(client.exceptions.GoneException):
        client.get_connection(ConnectionId=cid)
