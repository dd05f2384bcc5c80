"""Push: the WebSocket handlers, and the notices a commit sends after its
durable write.

  uploading device   {"type": "batch", batch_id, status, counts, entries, cursor...}
                     (a v1 upload's batch of one, in the v1 shape: {"type":
                     "upload", upload_id, status, revision, cursor...})
  its other devices  {"type": "changes", "cursor": N}

Over every live WebSocket connection of the user (API Gateway's management
API, `post_to_connection`: what `app.websocket_api.send` calls) and every
enabled SNS mobile endpoint. A connection that is gone is forgotten; an SNS
endpoint that fails is disabled. Pushing is an optimisation over long-poll
and the change feed, never the truth: no failure here may fail, delay much
or undo a commit, so every send is guarded and short.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .core import notices
from .core.errors import BadRequest, Conflict, SealsyncError, Unauthorized
from .core.tokens import verify

if TYPE_CHECKING:
    from .config import Runtime

log = logging.getLogger("sealsync.push")
Event = dict[str, Any]


class Gone(Exception):
    """The WebSocket connection no longer exists."""


class WsSender:
    """post_to_connection through the management API of each connection's
    own WebSocket API (one boto3 client per endpoint, built once)."""

    def __init__(self, make_client: Callable[[str], Any], override: str | None) -> None:
        self.make_client = make_client
        self.override = override  # SEALSYNC_WS_ENDPOINT: the local stack, or a fixed API
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def endpoint(self, request_context: dict[str, Any], region: str) -> str:
        """Where to post to a connection made through this request context,
        derived from the API id as Chalice's WebsocketAPI does."""
        if self.override:
            return self.override
        return (f"https://{request_context['apiId']}.execute-api.{region}.amazonaws.com/"
                f"{request_context['stage']}")

    def _client(self, endpoint: str) -> Any:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                client = self._clients[endpoint] = self.make_client(endpoint)
            return client

    def send(self, endpoint: str, connection_id: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client(endpoint).post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") == "GoneException" or status == 410:
                raise Gone(connection_id) from exc
            raise


class Notifier:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def upload_finished(self, user_id: str, device_id: str, result: notices.Message) -> int:
        """Send the result to the uploader and a change notice to the other
        devices. Returns how many messages went out; never raises."""
        try:
            targets = self.rt.registry.targets(user_id, int(time.time()))
        except Exception as exc:  # noqa: BLE001 - push must never fail a commit
            log.warning("push skipped, registry unreadable: %s", type(exc).__name__)
            return 0
        notice = notices.change_notice(result)
        sent = 0
        for conn in targets.connections:
            message = result if conn.device_id == device_id else notice
            if message is not None and self._send_ws(user_id, conn.endpoint,
                                                     conn.connection_id, message):
                sent += 1
        for mob in targets.mobiles:
            message = result if mob.device_id == device_id else notice
            if message is not None and self._send_mobile(user_id, mob, message):
                sent += 1
        return sent

    def _send_ws(self, user_id: str, endpoint: str, connection_id: str,
                 message: notices.Message) -> bool:
        try:
            self.rt.ws_sender.send(endpoint, connection_id, notices.encode(message))
            return True
        except Gone:
            self._forget(user_id, connection_id)
        except Exception as exc:  # noqa: BLE001
            log.warning("websocket send failed: %s", type(exc).__name__)
        return False

    def _forget(self, user_id: str, connection_id: str) -> None:
        try:
            self.rt.registry.remove_connection(connection_id, user_id)
        except Exception as exc:  # noqa: BLE001 - its TTL removes it anyway
            log.warning("could not forget a gone connection: %s", type(exc).__name__)

    def _send_mobile(self, user_id: str, mob: Any, message: notices.Message) -> bool:
        from .adapters.mobile import EndpointDead

        try:
            self.rt.mobile.publish(mob.platform, mob.endpoint_arn, message)
            return True
        except EndpointDead:
            log.info("disabling a mobile endpoint that failed")
            try:
                self.rt.mobile.disable(mob.endpoint_arn)
                self.rt.registry.disable_mobile(user_id, mob.device_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not disable a mobile endpoint: %s", type(exc).__name__)
        except Exception as exc:  # noqa: BLE001
            log.warning("mobile push failed: %s", type(exc).__name__)
        return False


# -- the WebSocket handlers (what app.py's on_ws_* call) ------------------------
def _caller(rt: Runtime, event: Event) -> tuple[str, str]:
    """(user, device) from the `Authorization: Bearer` header, or from a
    one-time `?ticket=` (POST /v1/push/tickets: browsers cannot set
    headers). A bearer token in the query string is refused: access logs
    keep query strings, and a token there would outlive its request."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    auth = headers.get("authorization")
    query = event.get("queryStringParameters") or {}
    query = query if isinstance(query, dict) else {}
    if "token" in query:
        raise Unauthorized("a token in the query string is refused: send the Authorization "
                           "header, or connect with ?ticket= from POST /v1/push/tickets")
    if isinstance(auth, str) and auth:
        who = verify(rt.settings.token_secret, auth.removeprefix("Bearer ").strip(),
                     int(time.time()))
        return who.user_id, who.device_id
    ticket = query.get("ticket")
    found = rt.tickets.redeem(ticket) if isinstance(ticket, str) else None
    if found is None:
        raise Unauthorized("a bearer token or an unspent connect ticket is required")
    return found


def connect_ticket(rt: Runtime, user_id: str, device_id: str) -> dict[str, Any]:
    """POST /v1/push/tickets: a single-use ticket to open one WebSocket."""
    ticket = rt.tickets.issue(user_id, device_id)
    return {"ticket": ticket, "expires_at": int(time.time()) + rt.tickets.ttl_s}


def ws_connect(rt: Runtime, event: Event) -> dict[str, Any]:
    """$connect: a valid token registers the connection; anything else is
    refused before the socket opens."""
    ctx = event.get("requestContext") or {}
    connection_id = ctx.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        return _reply(400, BadRequest("no connection id"))
    try:
        user_id, device_id = _caller(rt, event)
        device = rt.devices.get(user_id, device_id)
        if device is None or device.revoked_at is not None:
            raise Unauthorized("this device was revoked")
    except Unauthorized as exc:
        return _reply(401, exc)
    endpoint = rt.ws_sender.endpoint(ctx, rt.settings.region)
    rt.registry.add_connection(user_id, device_id, connection_id, endpoint, int(time.time()))
    return {"statusCode": 200}


def ws_message(rt: Runtime, event: Event) -> dict[str, Any]:
    """$default: only {"action": "ping"}, answered with {"type": "pong"}
    (keeps API Gateway's 10-minute idle timeout away)."""
    ctx = event.get("requestContext") or {}
    connection_id = str(ctx.get("connectionId") or "")
    try:
        notices.parse_client_message(event.get("body"))
        reply: notices.Message = {"type": "pong"}
    except SealsyncError as exc:
        reply = {"type": "error", **exc.to_body()}
    owner = rt.registry.connection_owner(connection_id)
    if owner is None:
        return {"statusCode": 410}
    endpoint = rt.ws_sender.endpoint(ctx, rt.settings.region)
    try:
        rt.ws_sender.send(endpoint, connection_id, notices.encode(reply))
    except Gone:
        rt.registry.remove_connection(connection_id, owner[0])
    return {"statusCode": 200}


def ws_disconnect(rt: Runtime, event: Event) -> dict[str, Any]:
    connection_id = (event.get("requestContext") or {}).get("connectionId")
    if isinstance(connection_id, str) and connection_id:
        rt.registry.remove_connection(connection_id)
    return {"statusCode": 200}


def _reply(status: int, exc: SealsyncError) -> dict[str, Any]:
    import json

    return {"statusCode": status, "body": json.dumps(exc.to_body())}


# -- mobile registration (POST/DELETE /v1/push/registrations) -------------------
def register_mobile(rt: Runtime, user_id: str, device_id: str,
                    body: dict[str, Any]) -> dict[str, Any]:
    from .adapters.mobile import EndpointTaken, NotConfigured

    platform, token = notices.parse_registration(body)
    try:
        arn = rt.mobile.register(platform, token, f"{user_id}:{device_id}")
    except NotConfigured:
        raise BadRequest(f"this server has no {platform} push configured") from None
    except EndpointTaken:
        raise Conflict("this push token is registered to another device; remove that "
                       "registration (DELETE /v1/push/registrations) from it first") from None
    rt.registry.put_mobile(user_id, device_id, platform, arn, int(time.time()))
    return {"device_id": device_id, "platform": platform, "enabled": True}


def unregister_mobile(rt: Runtime, user_id: str, device_id: str) -> dict[str, Any]:
    found = rt.registry.get_mobile(user_id, device_id)
    if found is not None:
        rt.mobile.delete(found.endpoint_arn)
        rt.registry.remove_mobile(user_id, device_id)
    return {"device_id": device_id, "removed": found is not None}


def push_info(rt: Runtime) -> dict[str, Any]:
    """Where clients connect for push, and which mobile platforms exist."""
    return {"websocket_url": rt.settings.ws_url,
            "mobile_platforms": sorted(p for p, arn in rt.settings.push_apps.items() if arn)}
