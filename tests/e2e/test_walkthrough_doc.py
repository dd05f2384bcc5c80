"""docs/walkthrough.md stays true: every `sh` block, pasted in order into
bash, against a running stack."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, StackProcess

pytestmark = pytest.mark.e2e
DOC = REPO / "docs" / "walkthrough.md"


def shell_blocks(markdown: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", markdown, re.S)


@pytest.mark.skipif(not all(shutil.which(t) for t in ("bash", "curl", "jq")),
                    reason="the walk-through needs bash, curl and jq")
def test_walkthrough_runs_as_written(stack: StackProcess, tmp_path: Path) -> None:
    blocks = shell_blocks(DOC.read_text())
    assert len(blocks) >= 10
    assert not any(line.lstrip().startswith("#") for b in blocks for line in b.splitlines()), \
        "comments break pasting into zsh"
    env = {**os.environ, "SEALSYNC_STATE": str(stack.state_file), "TMPDIR": str(tmp_path)}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(blocks)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert out.splitlines()[0] == stack.state["api"]
    assert out.count("\n200\n412\n200\n") == 1  # chunk, chunk again, manifest
    assert '"status": "accepted"' in out and '"revision": 1' in out
    assert "same bytes" in out
    assert '{"status":"accepted","revision":2,"winner_revision":null}' in out
    assert '{"status":"conflict","revision":null,"winner_revision":2}' in out
    assert '{"status":"accepted","revision":3}' in out
    assert '{"revision":3,"deleted":true}' in out
    assert '{"status":"rejected","reason":"bad signature: not signed by the uploading ' \
        'device for these bytes"}' in out
    assert out.rstrip().splitlines()[-2:] == ["401", "401"]
