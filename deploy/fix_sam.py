"""Finish the SAM template chalice generated (after --merge-template):
the role policies' ${AWS::...} placeholders become Fn::Sub, and the
WebSocket statement is dropped when the app has no WebSocket API."""
from __future__ import annotations

from typing import Any

WEBSOCKET_SID = "WebSocketPush"


def _sub(resource: Any) -> Any:
    return {"Fn::Sub": resource} if isinstance(resource, str) and "${" in resource else resource


def fix(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"]
    has_ws = "WebsocketAPI" in resources
    for res in resources.values():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            doc = policy["PolicyDocument"]
            doc["Statement"] = [s for s in doc["Statement"]
                                if has_ws or s.get("Sid") != WEBSOCKET_SID]
            for statement in doc["Statement"]:
                found = statement["Resource"]
                statement["Resource"] = ([_sub(r) for r in found] if isinstance(found, list)
                                         else _sub(found))
    return template
