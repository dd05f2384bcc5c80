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

    text = sealsync("usage", str(folder)).stdout
    assert "stored now" in text and "stored per day" in text
    assert any(block in text for block in "▏▎▍▌▋▊▉█")  # today's bar
    bad = sealsync("usage", "--from", "100", "--to", "50", str(folder), check=4)
    assert bad.stderr.count("\n") == 1 and "after" in bad.stderr
    assert json.loads(json.dumps(got))  # the --json document is plain JSON
