"""The templates are ready for Chalice-native websocket handlers (added on
another branch): a copy of the app with @app.on_ws_* handlers packages in
both formats, cfn-lint passes, and ManageConnections is granted on the
generated WebSocket API only, to every function."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy import iam_check, package

ROOT = Path(__file__).resolve().parents[2]
WS_HANDLERS = '''

app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.on_ws_connect()
def probe_connect(event: Any) -> None:
    pass


@app.on_ws_message()
def probe_message(event: Any) -> None:
    pass


@app.on_ws_disconnect()
def probe_disconnect(event: Any) -> None:
    pass
'''


@pytest.fixture(scope="module")
def with_websockets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    project = tmp_path_factory.mktemp("ws-app")
    shutil.copytree(ROOT / "chalicelib", project / "chalicelib")
    shutil.copytree(ROOT / ".chalice", project / ".chalice",
                    ignore=shutil.ignore_patterns("deployments", "venv"))
    shutil.copy(ROOT / "requirements.txt", project)
    source = (ROOT / "app.py").read_text()
    if "on_ws_connect" not in source:  # once the real handlers land, package them
        source += WS_HANDLERS
    (project / "app.py").write_text(source)
    return package.package("dev", tmp_path_factory.mktemp("ws-dist"), project=project)


def test_sam_with_websockets_lints_and_scopes_manage_connections(
        with_websockets: dict[str, Path]) -> None:
    lint = Path(sys.executable).parent / "cfn-lint"
    done = subprocess.run([str(lint), str(with_websockets["sam"])], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout
    res = package.load(with_websockets["sam"])["Resources"]
    assert res["WebsocketAPI"]["Type"] == "AWS::ApiGatewayV2::Api"
    roles = [r for r in res.values() if r["Type"] == "AWS::IAM::Role"
             and "scheduler.amazonaws.com" not in json.dumps(r["Properties"]
                                                             ["AssumeRolePolicyDocument"])]
    assert len(roles) >= 7  # the functions' roles (the scheduler's may only invoke `jobs`)
    for role in roles:
        doc = role["Properties"]["Policies"][0]["PolicyDocument"]
        assert iam_check.problems(doc) == []
        [ws] = [s for s in doc["Statement"] if s["Sid"] == "WebSocketPush"]
        assert ws["Action"] == ["execute-api:ManageConnections"]
        assert all(":${WebsocketAPI}/api/" in r["Fn::Sub"] for r in ws["Resource"])


def test_terraform_with_websockets_scopes_manage_connections(
        with_websockets: dict[str, Path]) -> None:
    tf = package.load(with_websockets["terraform"])["resource"]
    assert "websocket_api" in tf["aws_apigatewayv2_api"]
    for name, policy in tf["aws_iam_role_policy"].items():
        doc = json.loads(policy["policy"])
        [ws] = [s for s in doc["Statement"] if s["Sid"] == "WebSocketPush"]
        assert all("${aws_apigatewayv2_api.websocket_api.id}/api/" in r
                   for r in ws["Resource"]), name
    names = {f["function_name"] for f in tf["aws_lambda_function"].values()}
    assert {"sealsync-dev-websocket_connect", "sealsync-dev-websocket_message",
            "sealsync-dev-websocket_disconnect"} <= names
