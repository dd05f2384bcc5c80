"""Every benchmark still runs: `make bench` at toy sizes, and each script's
own entry point. Nothing here measures; it catches a benchmark that broke
(a renamed import on a lazy path went unnoticed once)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.run import REQUIRED

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def bench(*args: str, timeout_s: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")}
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=timeout_s)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.long  # a minute: `make bench` itself runs every step (make test-long)
def test_the_whole_run_fills_every_key(tmp_path: Path) -> None:
    if os.geteuid() != 0 and not (shutil.which("rclone") and shutil.which("restic")):
        pytest.skip("rclone and restic are missing and cannot be installed (not root)")
    bench("benchmarks.run", "--smoke", "--out", str(tmp_path), timeout_s=600)
    got = json.loads((tmp_path / "latest.json").read_text())
    assert got["meta"]["missing"] == [] and got["meta"]["errors"] == {}
    assert all(got[key] is not None for key in REQUIRED)
    assert got["initial_small_s"]["sealsync"] > 0 and got["meta"]["small_count"] == 20
    table = (tmp_path / "latest.md").read_text()
    assert "initial sync, 20 small files" in table


@pytest.mark.parametrize("args", [
    pytest.param(["benchmarks.push_latency", "--start", "--json", "--uploads", "3",
                  "--warmup", "1"], marks=pytest.mark.long),
    ["benchmarks.small_rate", "--files", "5", "--batches", "2"],
    ["benchmarks.moto_txn", "--items", "50", "-n", "2"],
    ["benchmarks.chunk_resync", "--keys", "2", "--window-mib", "2"],
    pytest.param(["benchmarks.resume", "--size-mib", "32", "--json"], marks=pytest.mark.long),
    ["benchmarks.big_file", "--size-mib", "4", "--tools", "sealsync", "--json"],
], ids=lambda a: a[0].split(".")[1])
def test_each_script_runs_on_its_own(args: list[str]) -> None:
    out = bench(*args).stdout
    assert out.strip()
    if args[0] == "benchmarks.push_latency":
        assert json.loads(out)["push_ms"]["p50"] > 0
    if args[0] == "benchmarks.big_file":
        assert json.loads(out)["best_s"]["sealsync"] > 0
    if args[0] == "benchmarks.resume":  # a toy size: in flight is a large share of it
        r = json.loads(out)
        assert r["needed_bytes"] > 32 << 20 and 0 <= r["resume_resent_bytes"] < r["needed_bytes"]
