"""Three devices of one account edit, delete and rename overlapping sets of
files (small ones, and big ones whose edits go as ranges of their base) in
one pass each, the passes run at the same moment; then every device syncs
until quiet. Every tree is identical and every edit is somewhere: the
head or a conflict copy (a delete never beats an edit)."""
from __future__ import annotations

import os
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sealsync_client.folder import Folder, init_folder

from tests.client_e2e.conftest import FAST, PASSPHRASE, settle, tree
from tests.e2e.conftest import StackProcess

pytestmark = pytest.mark.e2e
MiB = 1024 * 1024
SEEDS = [int(s) for s in os.environ.get("SEALSYNC_SEEDS", "1,2").split(",")]


@pytest.fixture
def three(stack: StackProcess, tmp_path: Path) -> Iterator[list[Folder]]:
    api = stack.state["api"]
    a = init_folder(tmp_path / "a", api, PASSPHRASE, device_name="a", cost=FAST)
    rest = [init_folder(tmp_path / n, api, PASSPHRASE, device_name=n,
                        join_user_id=a.config.user_id, cost=FAST, secret_key=a.secret_key)
            for n in ("b", "c")]
    folders = [a, *rest]
    try:
        yield folders
    finally:
        for f in folders:
            f.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_three_devices_overlapping_edits_and_deletes_converge(
        three: list[Folder], seed: int) -> None:
    rng = random.Random(seed)
    a = three[0]
    names = [f"s{i}.txt" for i in range(8)] + ["big0.bin", "big1.bin", "d/x.txt", "d/y.txt"]
    for name in names:
        size = 3 * MiB if name.startswith("big") else 200
        (a.root / name).parent.mkdir(exist_ok=True)
        (a.root / name).write_bytes(rng.randbytes(size))
    settle(*three)
    for _round in range(2):
        edits: list[bytes] = []
        for folder in three:
            for name in rng.sample(sorted(tree(folder)), 6):
                path = folder.root / name
                op = rng.choice(["edit", "edit", "delete", "rename"])
                if op == "delete":
                    path.unlink()
                elif op == "rename":
                    os.replace(path, path.with_name(f"{folder.config.device_name}-{path.name}"))
                else:
                    data = bytearray(path.read_bytes())
                    at = rng.randrange(max(1, len(data) - 64))
                    data[at:at + 64] = f"{folder.config.device_name}{rng.random()}".encode()
                    path.write_bytes(bytes(data))
                    edits.append(bytes(data))
        with ThreadPoolExecutor(3) as pool:  # one pass each, at the same moment
            reports = list(pool.map(lambda f: f.engine().sync(), three))
        assert not any(r.errors for r in reports), [r.errors for r in reports]
        settle(*three)
        trees = [tree(f) for f in three]
        assert trees[0] == trees[1] == trees[2]
        kept = set(trees[0].values())
        assert [e[:40] for e in edits if e not in kept] == []  # every edit somewhere


def test_a_directory_renamed_edited_inside_and_deleted_at_once(three: list[Folder]) -> None:
    a, b, c = three
    (a.root / "d" / "sub").mkdir(parents=True)
    for name in ("d/x.txt", "d/sub/y.txt", "d/big.bin"):
        (a.root / name).write_bytes(os.urandom(2 * MiB if name.endswith(".bin") else 100))
    settle(*three)
    os.rename(a.root / "d", a.root / "renamed")              # a renames the directory
    edited = (b.root / "d" / "sub" / "y.txt").read_bytes() + b" edited on b"
    (b.root / "d" / "sub" / "y.txt").write_bytes(edited)       # b edits inside it
    big = bytearray((b.root / "d" / "big.bin").read_bytes())
    big[MiB:MiB + 10] = b"0123456789"
    (b.root / "d" / "big.bin").write_bytes(bytes(big))
    for path in sorted((c.root / "d").rglob("*"), reverse=True):  # c deletes it all
        path.rmdir() if path.is_dir() else path.unlink()
    (c.root / "d").rmdir()
    with ThreadPoolExecutor(3) as pool:
        reports = list(pool.map(lambda f: f.engine().sync(), three))
    assert not any(r.errors for r in reports), [r.errors for r in reports]
    settle(*three)
    trees = [tree(f) for f in three]
    assert trees[0] == trees[1] == trees[2]
    assert {edited, bytes(big)} <= set(trees[0].values())  # the edits beat the delete
