"""What push messages say, and what a push registration may contain. Pure.

A message carries ids, states, revisions and the feed cursor: never a name,
a path, content or a key (invariant 6). Whoever receives one still asks
the API for anything more, so a lost or forged message costs at most a
wasted request.
"""
from __future__ import annotations

import json
import re
from typing import Any, Final

from .errors import BadRequest

# Our platform names -> the key SNS expects in a MessageStructure=json message.
PLATFORMS: Final = {"apns": "APNS", "apns_sandbox": "APNS_SANDBOX", "fcm": "GCM"}
MAX_WS_MESSAGE: Final = 4096  # bytes a client may send over the WebSocket
_TOKEN = re.compile(r"[A-Za-z0-9_:.\-]{8,4096}")

Message = dict[str, Any]


def upload_result(body: Message, cursor: int | None = None,
                  committed_ms: int | None = None) -> Message:
    """A v1 upload's terminal state (its batch of one), shaped like GET
    /v1/uploads/{id} (`body`), for the device that uploaded it."""
    out: Message = {"type": "upload", **body}
    for key, value in (("cursor", cursor), ("committed_ms", committed_ms)):
        if value is not None:
            out[key] = value
    return out


MAX_BATCH_PUSH = 1500  # bytes of verdicts a push may carry (APNs allows 4 KB in all)


def batch_result(body: Message, cursor: int | None, committed_ms: int | None = None) -> Message:
    """A finished batch, for the device that uploaded it: every verdict when
    they fit a push, else the counts (the device reads GET /v1/batches/{id});
    `cursor` when the feed moved, so other devices get a change notice."""
    entries = body["entries"]
    out: Message = {"type": "batch", "batch_id": body["batch_id"], "status": body["status"]}
    counts: dict[str, int] = {}
    for e in entries:
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    out["counts"] = counts
    if len(encode({"entries": entries})) <= MAX_BATCH_PUSH:
        out["entries"] = entries
    if cursor is not None:
        out["cursor"] = cursor
    if committed_ms is not None:
        out["committed_ms"] = committed_ms
    return out


def change_notice(result: Message) -> Message | None:
    """For the user's other devices: the feed moved to `cursor`. Only an
    accepted upload moves the feed."""
    moved = result.get("status") == "accepted" or result.get("type") == "batch"
    if not moved or "cursor" not in result:
        return None
    out: Message = {"type": "changes", "cursor": result["cursor"]}
    if "committed_ms" in result:
        out["committed_ms"] = result["committed_ms"]
    return out


def encode(message: Message) -> bytes:
    return json.dumps(message, separators=(",", ":"), sort_keys=True).encode()


def mobile_message(platform: str, message: Message) -> str:
    """An SNS MessageStructure=json body for one platform: data only (a
    background wake-up, no alert text, nothing a lock screen could show)."""
    data = json.dumps(message, separators=(",", ":"), sort_keys=True)
    body: dict[str, Any]
    if platform == "fcm":
        body = {"data": {"sealsync": data}}
    else:  # APNs: content-available wakes the app in the background, silently
        body = {"aps": {"content-available": 1}, "sealsync": message}
    return json.dumps({"default": data, PLATFORMS[platform]: json.dumps(body)})


def parse_registration(body: dict[str, Any]) -> tuple[str, str]:
    """(platform, device token) from POST /v1/push/registrations."""
    extra = set(body) - {"platform", "token"}
    if extra:
        raise BadRequest("unexpected field(s): " + ", ".join(sorted(extra)))
    platform = body.get("platform")
    if platform not in PLATFORMS:
        raise BadRequest("platform must be one of: " + ", ".join(sorted(PLATFORMS)))
    token = body.get("token")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise BadRequest("token must be 8-4096 characters of A-Z a-z 0-9 _ : . -")
    return str(platform), token


def parse_client_message(raw: str | None) -> str:
    """The action of a message a client sent over the WebSocket."""
    if raw is None or len(raw.encode(errors="replace")) > MAX_WS_MESSAGE:
        raise BadRequest(f"a message must be JSON of at most {MAX_WS_MESSAGE} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadRequest("a message must be a JSON object") from exc
    action = body.get("action") if isinstance(body, dict) else None
    if action != "ping":
        raise BadRequest('unknown action; send {"action": "ping"}')
    return "ping"
