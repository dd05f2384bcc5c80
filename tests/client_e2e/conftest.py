"""Two devices of one account, each with its own folder, against one local
stack started in a subprocess on free ports (tests/e2e's StackProcess)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sealsync_client.engine import Report
from sealsync_client.folder import Cost, Folder, init_folder

from tests.e2e.conftest import StackProcess, running_stack

# The lowest Argon2id cost every client accepts (KdfLimits): fast, still valid.
FAST = Cost(ops=2, mem=64 * 1024 * 1024)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("client-stack")) as sp:
        yield sp


@pytest.fixture
def devices(stack: StackProcess, tmp_path: Path) -> Iterator[tuple[Folder, Folder]]:
    a = init_folder(tmp_path / "laptop", stack.state["api"], PASSPHRASE,
                    device_name="laptop", cost=FAST)
    b = init_folder(tmp_path / "desktop", stack.state["api"], PASSPHRASE,
                    device_name="desktop", join_user_id=a.config.user_id, cost=FAST,
                    secret_key=a.secret_key)
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def settle(*folders: Folder, rounds: int = 8) -> list[Report]:
    """Sync every folder in turn until one whole round changes nothing."""
    engines = [f.engine() for f in folders]
    history: list[Report] = []
    for _ in range(rounds):
        reports = [e.sync() for e in engines]
        history += reports
        for r in reports:
            assert not r.errors, r.errors
        if not any(r.changed for r in reports):
            return history
    raise AssertionError(f"no quiescence after {rounds} rounds: {history[-2:]}")


def tree(folder: Folder) -> dict[str, bytes]:
    """Every synced file's content by relative path (the .sealsync dir excluded)."""
    root = folder.root
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d != ".sealsync"]
        for name in files:
            path = Path(dirpath, name)
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out
