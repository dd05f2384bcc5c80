"""`sealsync usage DIR` against the local stack, as a new user runs it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.client_e2e.test_cli import FAST, as_json, sealsync
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e


def test_a_new_user_sees_usage_with_a_chart(stack: StackProcess, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    as_json("init", "--server", stack.state["api"], *FAST, str(folder))
    empty = as_json("usage", str(folder))
    assert (empty["stored_bytes"], empty["versions"], empty["put_requests"]) == (0, 0, 0)

    (folder / "a.txt").write_text("alpha " * 1000)
    (folder / "b.bin").write_bytes(bytes(range(256)) * 400)
    as_json("sync", str(folder))
    got = as_json("usage", str(folder))
    # every version's bytes: sealed manifest + sealed chunks, so more than the plaintext
    assert got["versions_total"] == got["versions"] == 2
    assert got["stored_bytes"] > 6000 + 102400
    assert got["put_requests"] >= 1 and got["byte_hours"] >= 0
    assert got["daily"][-1]["stored_bytes"] == got["stored_bytes"]  # today's level

    text = sealsync("usage", str(folder)).stdout
    assert "stored now" in text and "stored per day" in text
    assert any(block in text for block in "▏▎▍▌▋▊▉█")  # today's bar
    bad = sealsync("usage", "--from", "100", "--to", "50", str(folder), check=4)
    assert bad.stderr.count("\n") == 1 and "after" in bad.stderr
    assert json.loads(json.dumps(got))  # the --json document is plain JSON


def _set_status(stack: StackProcess, user_id: str, status: str) -> None:
    """What the grace job (or paying) does to the account's standing."""
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=stack.state["aws_endpoint"],
                       region_name=stack.state["region"], aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    ddb.update_item(TableName=stack.state["table"],
                    Key={"pk": {"S": f"BILLING#{user_id[0]}"}, "sk": {"S": user_id}},
                    UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":s": {"S": status}})


def test_a_read_only_account_keeps_files_and_says_why(stack: StackProcess,
                                                     tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", stack.state["api"], "--email", "x@example.com",
                      *FAST, str(one))
    as_json("init", "--server", stack.state["api"], "--join", account["user_id"], *FAST,
            str(two), secret_key=account["secret_key"])
    (one / "kept.txt").write_text("before\n")
    as_json("sync", str(one))
    _set_status(stack, account["user_id"], "read_only")

    (one / "new.txt").write_text("written while read-only\n")
    done = sealsync("sync", str(one), check=5)
    assert done.stderr.count("\n") == 1 and "read-only" in done.stderr, done.stderr
    assert "nothing was uploaded" in done.stderr and "Traceback" not in done.stderr
    assert (one / "new.txt").read_text() == "written while read-only\n"  # kept
    assert as_json("status", str(one))["new"] == ["new.txt"]
    as_json("sync", str(two))  # downloads still work
    assert (two / "kept.txt").read_text() == "before\n"

    _set_status(stack, account["user_id"], "active")  # paid: writes resume
    assert as_json("sync", str(one))["uploaded"] == ["new.txt"]
