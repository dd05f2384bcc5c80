"""Finish the SAM template chalice generated (after --merge-template):
functions get chalice's names, the role policies' ${AWS::...} placeholders
become Fn::Sub, and the WebSocket statement is dropped when the app has no
WebSocket API."""
from __future__ import annotations

import re
from typing import Any

WEBSOCKET_SID = "WebSocketPush"


def _sub(resource: Any) -> Any:
    return {"Fn::Sub": resource} if isinstance(resource, str) and "${" in resource else resource


def function_name(app: str, stage: str, logical_id: str) -> str:
    """The name chalice's Terraform output gives the same function
    ("OnCommitQueue" -> "sealsync-dev-on_commit_queue"); SAM would
    otherwise make up one that the policy's log-group ARNs cannot name."""
    if logical_id == "APIHandler":
        return f"{app}-{stage}"
    return f"{app}-{stage}-" + re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id).lower()


def fix(template: dict[str, Any], app: str, stage: str) -> dict[str, Any]:
    resources = template["Resources"]
    for logical_id, res in resources.items():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["FunctionName"] = function_name(app, stage, logical_id)
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
