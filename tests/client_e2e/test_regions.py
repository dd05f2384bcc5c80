"""Home regions end to end: a two-region local stack (`--regions`), the
real CLI. Sign-up through one region lands in the other; a device pointed
at the wrong region is sent home once and remembers it; while the home is
down, the region holding its replica serves reads and refuses writes."""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from sealsync_client.state import State

from local.regions import RegionProcess, free_port, region_env, replicate_all
from tests.client_e2e.test_cli import FAST, as_json, sealsync
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
A, B = "eu-west-1", "us-east-1"
SECRET = "regions-e2e-" + secrets.token_hex(24)


@pytest.fixture(scope="module")
def two_regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEALSYNC_TOKEN_SECRET", SECRET)  # shared by every region's API
        workdir = tmp_path_factory.mktemp("regions-stack")
        sp = StackProcess(workdir, "--regions", f"{A},{B}",
                          env={"SEALSYNC_TOKEN_SECRET": SECRET})
        try:
            sp.wait_ready()
            yield sp
        finally:
            sp.stop()


def layout(sp: StackProcess) -> dict[str, dict[str, Any]]:
    return {r: {**v, "url": v["api"], "port": int(v["api"].rsplit(":", 1)[1])}
            for r, v in sp.state["regions"].items()}


def keys(sp: StackProcess, region: str, bucket: str) -> list[str]:
    s3 = boto3.session.Session().client("s3", region_name=region,
                                        endpoint_url=sp.state["aws_endpoint"],
                                        aws_access_key_id="testing",
                                        aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def test_sign_up_through_a_for_b_and_a_device_pointed_at_a_goes_home(
        two_regions: StackProcess, tmp_path: Path) -> None:
    regions = layout(two_regions)
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", regions[A]["url"], "--region", B, *FAST, str(one))
    assert account["server"] == regions[A]["url"] and account["home"] == regions[B]["url"]
    (one / "hello.txt").write_text("hello from one")
    sealsync("sync", str(one))
    user = account["user_id"]
    assert any(k.startswith(f"chunks/{user}/") or k.startswith(f"packs/{user}/")
               or k.startswith(f"manifests/{user}/")
               for k in keys(two_regions, B, regions[B]["bucket"]))
    assert not any(user in k for k in keys(two_regions, A, regions[A]["bucket"]))

    # a second device, told only region A's URL: sent home once, then straight to B
    joined = sealsync("init", "--server", regions[A]["url"], "--join", user, *FAST, str(two),
                      "--json", secret_key=account["secret_key"])
    assert json.loads(joined.stdout)["home"] == regions[B]["url"]
    assert joined.stderr.count(f"lives in region {B}") == 1
    synced = sealsync("sync", str(two))
    assert "lives in region" not in synced.stderr  # remembered: no more detours
    assert (two / "hello.txt").read_text() == "hello from one"


def test_unknown_region_at_sign_up_is_one_line(two_regions: StackProcess,
                                               tmp_path: Path) -> None:
    bad = sealsync("init", "--server", layout(two_regions)[A]["url"], "--region",
                   "mars-north-1", *FAST, str(tmp_path / "x"), check=4)
    assert bad.stderr.count("\n") == 1 and "region must be one of: eu-west-1, us-east-1" \
        in bad.stderr
    assert not (tmp_path / "x" / ".sealsync").exists()


def test_home_down_reads_from_the_replica_and_writes_wait(
        two_regions: StackProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    regions = layout(two_regions)
    one, two = tmp_path / "one", tmp_path / "two"
    account = as_json("init", "--server", regions[A]["url"], *FAST, str(one))
    assert account["home"] == regions[A]["url"]
    sealsync("init", "--server", regions[A]["url"], "--join", account["user_id"], *FAST,
             str(two), secret_key=account["secret_key"])
    (one / "report.txt").write_text("written before the outage")
    sealsync("sync", str(one))
    replicate_all(regions, two_regions.state["aws_endpoint"])  # CRR + global tables

    # Region A "fails": B's API restarted with SEALSYNC_REGIONS_DOWN=eu-west-1 (a
    # process of its own on the same moto and Redis), and A's address stops
    # answering for device two (its remembered home points nowhere).
    monkeypatch.setenv("SEALSYNC_TOKEN_SECRET", SECRET)
    port = free_port()
    failover_layout = {r: {**v, "url": v["url"]} for r, v in regions.items()}
    failover_layout[B]["url"] = f"http://127.0.0.1:{port}"
    env = region_env(failover_layout, B, down=A)
    failover = RegionProcess(B, port, two_regions.state["aws_endpoint"],
                             two_regions.state["redis_url"].rsplit("/", 1)[0] + "/5", env,
                             tmp_path)
    try:
        failover.wait_ready()
        config = json.loads((two / ".sealsync" / "config.json").read_text())
        config["server"] = f"http://127.0.0.1:{port}"  # what the client falls back to
        (two / ".sealsync" / "config.json").write_text(json.dumps(config))
        state = State(two.resolve())  # what Api.on_home keeps (folder._api)
        state.set("home", "http://127.0.0.1:9")  # the home, unreachable
        state.close()

        pulled = sealsync("sync", str(two))  # reads: from the replica in B
        assert (two / "report.txt").read_text() == "written before the outage", pulled

        (two / "report.txt").write_text("edited during the outage")
        refused = sealsync("sync", str(two), check=5)
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert f"home region {A} is unavailable" in refused.stderr
        assert (two / "report.txt").read_text() == "edited during the outage"  # kept
    finally:
        failover.stop()

