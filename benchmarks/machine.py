"""Figures that need no running stack, and the other helpers' benchmark
scripts, each run as a child process that prints one JSON object."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"


def json_child(args: list[str], timeout_s: float) -> dict[str, Any]:
    """Run a Python script; its stdout's last JSON object."""
    out = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout_s)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {out.returncode}: {out.stderr[-1500:]}")
    start = out.stdout.find("{")
    if start < 0:
        raise RuntimeError(f"{' '.join(args)} printed no JSON: {out.stdout[-500:]}")
    result: dict[str, Any] = json.loads(out.stdout[start:])
    return result


def cold_import_ms(runs: int = 5) -> dict[str, Any]:
    """`import app` in a fresh interpreter: the median wall ms of `runs`,
    less the bare interpreter start measured the same way."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")}
    env.update({"SEALSYNC_BUCKET": "b", "SEALSYNC_TABLE": "t", "SEALSYNC_REDIS_URL":
                "redis://127.0.0.1:1/0", "SEALSYNC_TOKEN_SECRET": "x" * 32})
    code = ("import time; t = time.perf_counter(); import app; "
            "print((time.perf_counter() - t) * 1000)")
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return {"median": round(statistics.median(samples), 1), "runs": runs,
            "samples": [round(s, 1) for s in samples]}


def zip_mb() -> dict[str, Any]:
    """The Lambda deployment package `chalice package` builds (Terraform
    format: SAM refuses the app's S3 trigger), in MB (10**6 bytes)."""
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION",
                                                              "us-east-1")}
    with tempfile.TemporaryDirectory(prefix="sealsync-pkg-") as tmp:
        out = Path(tmp) / "out"
        run = subprocess.run([str(Path(sys.executable).parent / "chalice"), "package",
                              "--pkg-format", "terraform", str(out)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            raise RuntimeError(f"chalice package failed: {run.stderr[-1500:]}")
        zf = out / "deployment.zip"
        with zipfile.ZipFile(zf) as z:
            unpacked = sum(i.file_size for i in z.infolist())
            files = len(z.infolist())
        return {"mb": round(zf.stat().st_size / 1e6, 3),
                "unpacked_mb": round(unpacked / 1e6, 3), "files": files}


def pipeline(size_mib: int, runs: int) -> dict[str, Any]:
    return json_child([str(BENCH / "client_pipeline.py"), "--size-mib", str(size_mib),
                       "--runs", str(runs), "--json"], timeout_s=900)


def client_1gib(size_mib: int, seed: int) -> dict[str, Any]:
    """benchmarks/client_1gib.py --json (its own stack). Its key for the peak
    RSS is client_rss_mb_1gib or rss_peak_mb depending on its version."""
    script = str(BENCH / "client_1gib.py")
    usage = subprocess.run([sys.executable, script, "--help"], cwd=REPO, capture_output=True,
                           text=True).stdout
    size = (["--size-mib", str(size_mib)] if "--size-mib" in usage else
            ["--size-bytes", str(size_mib << 20)] if "--size-bytes" in usage else
            ["--size", str(size_mib)] if "--size " in usage else [])
    if not size:
        size_mib = 1024  # its default
    t = time.perf_counter()
    r = json_child([script, *size, "--seed", str(seed), "--json"], timeout_s=1200)
    rss = r.get("rss_peak_mb", r.get("client_rss_mb_1gib"))
    return {"rss_mb": rss, "size_mib": size_mib, "s": round(time.perf_counter() - t, 1),
            "raw": {k: v for k, v in r.items() if k != "sync_reports"}}


def resume(size_mib: int, seed: int) -> dict[str, Any]:
    """benchmarks/resume.py --json (its own stack): bytes re-sent after a
    killed upload of a size_mib file resumes."""
    return json_child([str(BENCH / "resume.py"), "--size-mib", str(size_mib), "--seed",
                       str(seed), "--json"], timeout_s=1800)


def push_latency(state_file: Path, uploads: int) -> dict[str, Any] | None:
    """benchmarks/push_latency.py --json, when that script exists."""
    script = BENCH / "push_latency.py"
    if not script.exists():
        return None
    errors = []
    for where in (["--state-file", str(state_file)], []):
        args = ["--json", "--uploads", str(uploads), *where]
        try:
            return json_child([str(script), *args], timeout_s=900)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            errors.append(str(exc)[-300:])
    raise RuntimeError("push_latency.py failed: " + " | ".join(errors))
