"""Random edits on two devices, with sync passes run at the same moment on
both (so uploads really race at the server, not only in the change feed).
After each round both folders must converge, and every version ever written
must exist: in a folder or in the server's history. ("Ever written" means
present in a folder when a sync started: a user overwriting their own file
before any sync saw it is not the engine's loss.)"""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sealsync_client.engine import Report
from sealsync_client.folder import Folder

from tests.client_e2e.conftest import settle, tree
from tests.client_e2e.test_two_devices import every_stored_version, write

pytestmark = pytest.mark.e2e
SEEDS = [int(s) for s in os.environ.get("SEALSYNC_SEEDS", "1,2,3").split(",")]
NAMES = ["a.txt", "b.md", "dir/c.txt", "dir/sub/d.bin", "e"]


def _step(rng: random.Random, folder: Folder, written: list[bytes], n: int) -> None:
    files = sorted(tree(folder))
    op = rng.choice(["create", "edit", "edit", "rename", "delete"] if files else ["create"])
    if op == "create":
        rel = rng.choice(NAMES)
        size = rng.choice([10, 3000, 300_000])
        data = f"v{n} {folder.config.device_name} ".encode() + rng.randbytes(size)
        written.append(write(folder, rel, data))
    elif op == "edit":
        rel = rng.choice(files)
        written.append(write(folder, rel, f"edit {n} ".encode() + rng.randbytes(64)))
    elif op == "rename":
        rel = rng.choice(files)
        dest = folder.root / f"moved/{n}-{Path(rel).name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(folder.root / rel, dest)
    else:
        os.remove(folder.root / rng.choice(files))


def _both(a: Folder, b: Folder) -> list[Report]:
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(lambda f: f.engine().sync(), [a, b]))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_concurrent_edits_converge_and_lose_nothing(
        seed: int, devices: tuple[Folder, Folder], tmp_path: Path) -> None:
    rng = random.Random(seed)
    a, b = devices
    written: list[bytes] = []
    scratch: list[bytes] = []  # what _step wrote, whether or not a sync saw it
    for round_ in range(6):
        for i in range(rng.randint(1, 3)):
            _step(rng, a, scratch, round_ * 10 + i)
            _step(rng, b, scratch, round_ * 10 + i + 5)
        seen = [*tree(a).values(), *tree(b).values()]
        written += seen
        reports = _both(a, b)
        for r in reports:
            assert not r.errors, r.errors
        settle(a, b)
        assert tree(a) == tree(b), f"seed {seed} round {round_}"
    final = tree(a)
    stored = every_stored_version(a, tmp_path / "versions")
    for data in written:
        assert data in final.values() or data in stored, (seed, data[:30])
