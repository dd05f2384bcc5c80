"""A local stack in several regions: `make dev DEV_ARGS=--regions eu-west-1,us-east-1`.

moto's server is multi-region (one server; a client's region name picks a
separate set of tables and buckets), so one moto and one Redis serve every
region. The first region is the stack started by `make dev`; each other
region is one more `python -m local.stack --region NAME --attach-moto URL
--attach-redis URL` process with its own API, event pump, sweeper and
WebSocket gateway (billing stays with the first). Every region gets its
own bucket and table, the replica of the next region's (CRR and global
tables, emulated by local/replicate.py every few seconds), and a replica
of the global directory, whose writer is the first region's.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("sealsync.regions")

HOST = "127.0.0.1"
DIRECTORY = "sealsync-directory"
READY_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def names(region: str) -> tuple[str, str]:
    """(bucket and table, replica bucket) of `region`: bucket names are one
    namespace across regions, in moto as in S3."""
    return f"sealsync-local-{region}", f"sealsync-local-{region}-replica"


def plan(regions: list[str], first_port: int) -> dict[str, dict[str, Any]]:
    """Each region's API port and names; each keeps the next one's replica."""
    ports = [first_port or free_port()] + [free_port() for _ in regions[1:]]
    out: dict[str, dict[str, Any]] = {}
    for i, region in enumerate(regions):
        home, replica_bucket = names(region)
        out[region] = {"url": f"http://{HOST}:{ports[i]}", "port": ports[i], "table": home,
                       "bucket": home, "replica": regions[(i + 1) % len(regions)],
                       "replica_bucket": replica_bucket}
    return out


def region_env(layout: dict[str, dict[str, Any]], region: str,
               down: str = "") -> dict[str, str]:
    """The environment of `region`'s API in this layout."""
    spec = {name: {k: r[k] for k in ("url", "table", "replica", "replica_bucket")}
            for name, r in layout.items()}
    env = {"SEALSYNC_REGIONS": json.dumps(spec), "SEALSYNC_DIRECTORY_TABLE": DIRECTORY,
           "SEALSYNC_DIRECTORY_REGION": next(iter(layout)),
           "SEALSYNC_BUCKET": layout[region]["bucket"], "SEALSYNC_TABLE": layout[region]["table"],
           "SEALSYNC_QUEUE": f"sealsync-commits-{region}"}
    if down:
        env["SEALSYNC_REGIONS_DOWN"] = down
    return env


class RegionProcess:
    """One more region's API (and pump, sweeper, gateway) in a subprocess
    attached to this stack's moto and Redis."""

    def __init__(self, region: str, port: int, moto_url: str, redis_url: str,
                 env: dict[str, str], workdir: Path) -> None:
        self.region = region
        self.state_file = workdir / f".sealsync-stack-{region}.json"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("SEALSYNC_")}
        child_env.update(env)
        child_env["SEALSYNC_TOKEN_SECRET"] = os.environ["SEALSYNC_TOKEN_SECRET"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "local.stack", "--region", region, "--attach-moto", moto_url,
             "--attach-redis", redis_url, "--api-port", str(port), "--ephemeral",
             "--state-file", str(self.state_file), "--exit-with-parent"],
            cwd=Path(__file__).resolve().parent.parent, env=child_env,
            stdout=subprocess.PIPE, stderr=None, text=True)
        self.info: dict[str, Any] = {}

    def wait_ready(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        for line in self.proc.stdout:
            if line.strip() == "ready":
                self.info = json.loads(self.state_file.read_text())
                threading.Thread(target=self._drain, daemon=True).start()
                return self.info
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError(f"region {self.region} did not start (exit {self.proc.poll()})")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def replicate_all(layout: dict[str, dict[str, Any]], endpoint: str) -> None:
    """One round of every region's replication into the region keeping it."""
    import boto3

    from local.replicate import replicate

    def client(service: str, region: str) -> Any:
        session: Any = boto3.session.Session()
        return session.client(service, region_name=region, endpoint_url=endpoint,
                              aws_access_key_id="testing", aws_secret_access_key="testing")

    for region, r in layout.items():
        keeper = r["replica"]
        replicate(client("s3", region), r["bucket"], client("dynamodb", region), r["table"],
                  client("s3", keeper), r["replica_bucket"], client("dynamodb", keeper))


class Attached:
    """A service another stack runs (moto or Redis, for one more region)."""

    proc = None

    def __init__(self, url: str) -> None:
        self.url = url

    def arm(self) -> None:
        """Snapshots are the owning stack's business."""

    def stop(self) -> None:
        """Not ours to stop."""


def prepare(regions: tuple[str, ...], api_port: int) -> dict[str, dict[str, Any]]:
    """The first region's environment, set before the app is imported;
    returns the layout every region follows."""
    layout = plan(list(regions), api_port)
    os.environ.update(region_env(layout, regions[0]))
    return layout


def create_region_resources(rt: Any) -> None:
    """Beyond create_all: the replicas this region keeps and its replica of
    the directory (the writer's holds every entry)."""
    from local.resources import create_directory, create_replicas

    create_replicas(rt)
    if rt.settings.directory_table:
        create_directory(rt.dynamodb, rt.settings.directory_table)


def start_others(layout: dict[str, dict[str, Any]], moto_url: str, redis_url: str,
                 workdir: Path) -> list[RegionProcess]:
    """Every region but the first, each on its own Redis database."""
    started: list[RegionProcess] = []
    try:
        for n, region in enumerate(list(layout)[1:], start=1):
            base = redis_url.rsplit("/", 1)[0] if redis_url.count("/") > 2 else redis_url
            proc = RegionProcess(region, layout[region]["port"], moto_url, f"{base}/{n}",
                                 region_env(layout, region), workdir)
            started.append(proc)
            info = proc.wait_ready()
            log.info("region %s: api %s", region, info["api"])
    except BaseException:
        for proc in started:
            proc.stop()
        raise
    return started
