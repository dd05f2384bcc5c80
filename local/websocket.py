"""Locally, what API Gateway's WebSocket API does (and the mobile push apps).

  ws://127.0.0.1:P        clients connect here; each connect, message and
                          disconnect is handed, in API Gateway's Lambda event
                          shape, to the SAME handlers Lambda runs
                          (app.ws_connect / ws_message / ws_disconnect); a
                          non-200 from $connect refuses the handshake
  http://127.0.0.1:Q      the management API: POST /@connections/{id} sends,
                          DELETE closes, GET describes; 410 GoneException for
                          a connection that is not open, as AWS answers

So the commit's sending code is the code AWS runs: a boto3
`apigatewaymanagementapi` client, pointed here by SEALSYNC_WS_ENDPOINT.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger("sealsync.websocket")
logging.getLogger("websockets.server").setLevel(logging.WARNING)  # one line per socket is noise

Handler = Callable[[dict[str, Any], Any], Any]
API_ID = "local"
STAGE = "local"
OPEN_WAIT_S = 5.0  # a post racing the handshake waits this long for it
MAX_MESSAGE = 128 * 1024  # API Gateway's frame limit is 32 KiB; be generous


def _connection_id() -> str:
    """Shaped like API Gateway's (16 characters of base64)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(10)).decode()


class _Conn:
    def __init__(self, ws: Any, source_ip: str) -> None:
        self.ws = ws
        self.opened = asyncio.Event()
        self.connected_at = time.time()
        self.source_ip = source_ip


class LocalWebsocketGateway:
    """Both endpoints bind on construction, so their URLs are known before
    the app is imported; `start` attaches the handlers and serves."""

    def __init__(self, host: str = "127.0.0.1", ws_port: int = 0, mgmt_port: int = 0,
                 function_prefix: str = "sealsync-local") -> None:
        self.host = host
        self.function_prefix = function_prefix
        self._sock = socket.create_server((host, ws_port))
        self._http = ThreadingHTTPServer((host, mgmt_port), _management_handler(self))
        self._http.daemon_threads = True
        self._loop = asyncio.new_event_loop()
        self._conns: dict[str, _Conn] = {}
        self._closing: set[asyncio.Future[Any]] = set()
        self._server: Any = None
        self._threads: list[threading.Thread] = []
        self.handlers: dict[str, Handler] = {}

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self._sock.getsockname()[1]}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self._http.server_address[1]}"

    def env(self) -> dict[str, str]:
        return {"SEALSYNC_WS_ENDPOINT": self.management_url, "SEALSYNC_WS_URL": self.url}

    # -- lifecycle ---------------------------------------------------------------
    def start(self, connect: Handler, message: Handler, disconnect: Handler
              ) -> LocalWebsocketGateway:
        from websockets.asyncio.server import serve

        self.handlers = {"$connect": connect, "$default": message, "$disconnect": disconnect}
        loop_thread = threading.Thread(target=self._loop.run_forever, name="ws-loop",
                                       daemon=True)
        loop_thread.start()
        self._threads = [loop_thread]

        async def open_server() -> Any:
            return await serve(self._session, sock=self._sock, max_size=MAX_MESSAGE,
                               process_request=self._on_connect)

        self._server = asyncio.run_coroutine_threadsafe(open_server(), self._loop).result(10)
        http_thread = threading.Thread(target=self._http.serve_forever, name="ws-management",
                                       daemon=True)
        http_thread.start()
        self._threads.append(http_thread)
        return self

    def stop(self) -> None:
        if len(self._threads) == 2:  # shutdown() waits forever on a server never served
            self._http.shutdown()
        self._http.server_close()
        if self._server is not None:
            async def close() -> None:
                self._server.close()
                await self._server.wait_closed()
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(10)
        self._sock.close()

    # -- Lambda-shaped events ------------------------------------------------------
    def _event(self, route: str, connection_id: str, conn: _Conn, **extra: Any
               ) -> dict[str, Any]:
        kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
        now_ms = int(time.time() * 1000)
        ctx = {"routeKey": route, "eventType": kind, "connectionId": connection_id,
               "apiId": API_ID, "stage": STAGE, "messageDirection": "IN",
               "domainName": f"{self.host}:{self._sock.getsockname()[1]}",
               "requestId": secrets.token_hex(8), "requestTimeEpoch": now_ms,
               "connectedAt": int(conn.connected_at * 1000),
               "identity": {"sourceIp": conn.source_ip}}
        if kind == "MESSAGE":
            ctx["messageId"] = secrets.token_hex(8)
        return {"requestContext": ctx, "isBase64Encoded": False, **extra}

    async def _invoke(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        """Run a handler off the loop (it does blocking I/O), as Lambda would."""
        from local.pump import lambda_context

        handler = self.handlers[route]
        name = f"{self.function_prefix}-{route.strip('$')}"

        def call() -> dict[str, Any]:
            try:
                out = handler(event, lambda_context(name))
                return out if isinstance(out, dict) else {"statusCode": 200}
            except Exception as exc:  # noqa: BLE001 - Lambda reports a 500
                log.warning("websocket %s handler failed: %s: %s", route,
                            type(exc).__name__, exc)
                return {"statusCode": 500}
        return await self._loop.run_in_executor(None, call)

    async def _on_connect(self, ws: Any, request: Any) -> Any:
        """$connect runs before the handshake completes; non-200 refuses it."""
        connection_id = _connection_id()
        peer = ws.remote_address[0] if ws.remote_address else "127.0.0.1"
        conn = _Conn(ws, peer)
        ws.sealsync_id = connection_id
        self._conns[connection_id] = conn  # posts during the handshake wait for it
        query = parse_qs(urlsplit(request.path).query)
        headers = dict(request.headers.raw_items())
        event = self._event("$connect", connection_id, conn, headers=headers,
                            queryStringParameters={k: v[-1] for k, v in query.items()} or None)
        result = await self._invoke("$connect", event)
        status = int(result.get("statusCode", 200))
        if status != 200:
            self._conns.pop(connection_id, None)
            return ws.respond(HTTPStatus(status), str(result.get("body") or "") + "\n")
        return None

    async def _session(self, ws: Any) -> None:
        connection_id: str = ws.sealsync_id
        conn = self._conns.get(connection_id)
        if conn is None:
            return
        conn.opened.set()
        try:
            async for raw in ws:
                text = raw if isinstance(raw, str) else raw.decode(errors="replace")
                await self._invoke("$default", self._event("$default", connection_id, conn,
                                                           body=text))
        except Exception as exc:  # noqa: BLE001 - a dropped socket ends the session
            log.debug("websocket %s ended: %s", connection_id, type(exc).__name__)
        finally:
            self._conns.pop(connection_id, None)
            await self._invoke("$disconnect", self._event("$disconnect", connection_id, conn))

    # -- the management API (called from its HTTP threads) -----------------------------
    async def _open_conn(self, connection_id: str) -> _Conn | None:
        conn = self._conns.get(connection_id)
        if conn is None:
            return None
        try:
            await asyncio.wait_for(conn.opened.wait(), OPEN_WAIT_S)
        except TimeoutError:
            return None
        return conn if connection_id in self._conns else None

    async def _post(self, connection_id: str, data: bytes) -> bool:
        conn = await self._open_conn(connection_id)
        if conn is None:
            return False
        try:
            await conn.ws.send(data.decode(errors="replace"))
            return True
        except Exception:  # noqa: BLE001 - closed meanwhile: gone
            return False

    async def _close(self, connection_id: str) -> bool:
        conn = await self._open_conn(connection_id)
        if conn is None:
            return False
        # Like API Gateway, answer at once: the closing handshake (which a
        # stalled client may never finish) completes in the background.
        self._closing.add(asyncio.ensure_future(conn.ws.close()))
        self._closing = {t for t in self._closing if not t.done()}
        return True

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(OPEN_WAIT_S + 5)

    def info(self, connection_id: str) -> dict[str, Any] | None:
        conn = self._conns.get(connection_id)
        if conn is None:
            return None
        return {"connectedAt": conn.connected_at, "lastActiveAt": time.time(),
                "identity": {"sourceIp": conn.source_ip}}


def _management_handler(gw: LocalWebsocketGateway) -> type[BaseHTTPRequestHandler]:
    class Management(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("management: " + format, *args)

        def _connection_id(self) -> str | None:
            path = urlsplit(self.path).path
            if "/@connections/" not in unquote(path):
                return None
            return unquote(unquote(path).split("/@connections/", 1)[1])

        def _answer(self, status: int, body: Any = None, error: str | None = None) -> None:
            raw = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(raw)))
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.end_headers()
            self.wfile.write(raw)

        def _gone(self) -> None:
            self._answer(410, {"message": None}, "GoneException")

        def do_POST(self) -> None:  # noqa: N802
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
            cid = self._connection_id()
            if cid is None:
                return self._answer(404, {"message": "no such route"}, "NotFoundException")
            if len(data) > MAX_MESSAGE:
                return self._answer(413, {"message": "payload too large"},
                                    "PayloadTooLargeException")
            return self._answer(200) if gw.call(gw._post(cid, data)) else self._gone()

        def do_DELETE(self) -> None:  # noqa: N802
            cid = self._connection_id()
            if cid is None:
                return self._answer(404, {"message": "no such route"}, "NotFoundException")
            return self._answer(204) if gw.call(gw._close(cid)) else self._gone()

        def do_GET(self) -> None:  # noqa: N802
            cid = self._connection_id()
            info = gw.info(cid) if cid else None
            return self._answer(200, info) if info is not None else self._gone()

    return Management


def local_push_apps(aws_endpoint: str, region: str = "us-east-1") -> dict[str, str]:
    """SNS platform applications in moto, as env vars, so mobile registration
    works locally (moto keeps what is published; nothing leaves the machine)."""
    import boto3

    from chalicelib.config import PUSH_APP_VARS

    sns = boto3.client("sns", endpoint_url=aws_endpoint, region_name=region)
    kinds = {"apns": "APNS", "apns_sandbox": "APNS_SANDBOX", "fcm": "GCM"}
    return {PUSH_APP_VARS[p]: sns.create_platform_application(
        Name=f"sealsync-local-{p}", Platform=kind, Attributes={})["PlatformApplicationArn"]
        for p, kind in kinds.items()}
