"""The client sync engine as a state machine: 2 or 3 devices of a fresh
account, random file operations on random devices (with adversarial names
from a small pool, so that they collide), sync passes alone, two at once,
or killed mid-transfer; then settle and check the model (world.py).
docs/TESTING.md, "The client state machine", lists the rules and checks.

Reproduce a failure with the seed it reports:
SEALSYNC_HYPOTHESIS_SEED=N .venv/bin/pytest tests/client_model -x
"""
from __future__ import annotations

import functools
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.internal.conjecture.engine
import pytest
from hypothesis import note, seed
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.client_model.conftest import PROFILE, SHRINK_S, TARGET_STEPS, Stats, profile
from tests.client_model.pool import DIR_NAMES, FILE_NAMES, SIZES, SKIP
from tests.client_model.world import World
from tests.e2e.conftest import StackProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900 if PROFILE == "ci" else 4 * 3600)]

# Names come from fixed pools; a file or directory that must exist is a raw
# index, reduced modulo what exists when the rule runs: a draw never depends
# on state that timing could change, so examples replay and shrink.
DEV = st.integers(0, 2)
PICK = st.integers(0, 63)
NAME = st.sampled_from(FILE_NAMES)
DIR = st.sampled_from(DIR_NAMES)
SIZE = st.sampled_from(SIZES)


def acting(fn: Callable[..., str | bool | None]) -> Callable[..., None]:
    """Count the step (or the idle call); remember a failure, so that
    teardown does not run the final check over a broken run."""
    @functools.wraps(fn)
    def step(self: ClientMachine, **kw: Any) -> None:
        try:
            did = fn(self, **kw)
        except BaseException:
            self.failed = True
            raise
        if did is None:
            Stats.idle += 1
            return
        if isinstance(did, str):
            note(f"{fn.__name__}: {did}")
        Stats.steps += 1
        Stats.by_rule[fn.__name__] += 1
    return step


def enabled(op: str) -> Callable[[Any], bool]:
    return lambda self: op not in SKIP


class ClientMachine(RuleBasedStateMachine):
    server: str = ""
    base: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.failed = False

    @initialize(n=st.sampled_from([2, 3]))
    def make_devices(self, n: int) -> None:
        try:
            self.world = World(self.server, Path(tempfile.mkdtemp(dir=self.base)), n)
        except BaseException:
            self.failed = True
            raise
        Stats.runs += 1

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    # -- file operations --------------------------------------------------------------
    # (hypothesis orders rules by their number of arguments: create, with
    # one, is the simplest rule, so that small examples make files)
    @rule(what=st.tuples(DEV, NAME, SIZE))
    @acting
    def create(self, what: tuple[int, str, int]) -> str | None:
        dev, name, size = what
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.create(d, name, size)) else None

    @rule(dev=DEV, pick=PICK, size=SIZE)
    @acting
    def edit(self, dev: int, pick: int, size: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.edit(d, pick, size)) else None

    @precondition(enabled("samesize"))
    @rule(dev=DEV, pick=PICK)
    @acting
    def edit_same_size_and_mtime(self, dev: int, pick: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.edit_same_size_mtime(d, pick)) else None

    @rule(dev=DEV, pick=PICK, name=NAME)
    @acting
    def rename(self, dev: int, pick: int, name: str) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.rename(d, pick, name)) else None

    @precondition(enabled("swap"))
    @rule(dev=DEV, pick=PICK, other=PICK)
    @acting
    def swap_names(self, dev: int, pick: int, other: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.swap(d, pick, other)) else None

    @rule(dev=DEV, pick=PICK)
    @acting
    def delete(self, dev: int, pick: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.delete(d, pick)) else None

    @precondition(enabled("dirrename"))
    @rule(dev=DEV, pick=PICK, name=DIR)
    @acting
    def rename_dir(self, dev: int, pick: int, name: str) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.rename_dir(d, pick, name)) else None

    @precondition(enabled("typechange"))
    @rule(dev=DEV, pick=PICK)
    @acting
    def file_to_dir(self, dev: int, pick: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.file_to_dir(d, pick)) else None

    @precondition(enabled("typechange"))
    @rule(dev=DEV, pick=PICK)
    @acting
    def dir_to_file(self, dev: int, pick: int) -> str | None:
        d = self.w.device(dev)
        return f"{d.name} " + s if (s := self.w.dir_to_file(d, pick)) else None

    # -- sync ---------------------------------------------------------------------------
    @rule(dev=DEV)
    @acting
    def sync(self, dev: int) -> str:
        self.w.sync(self.w.device(dev))
        return f"{self.w.device(dev).name} sync"

    @precondition(enabled("concurrent"))
    @rule(dev=DEV, other=st.integers(0, 1))
    @acting
    def sync_two_at_once(self, dev: int, other: int) -> str:
        a = dev % len(self.w.devices)
        b = (a + 1 + other % (len(self.w.devices) - 1)) % len(self.w.devices)
        self.w.sync_together(self.w.devices[a], self.w.devices[b])
        return f"dev{a} and dev{b} sync at once"

    @precondition(enabled("kill"))
    @rule(dev=DEV, at=st.integers(1, 4), kind=st.sampled_from(["put", "get", "call", "any"]),
          after=st.booleans())
    @acting
    def killed_sync(self, dev: int, at: int, kind: str, after: bool) -> str:
        d = self.w.device(dev)
        fired = self.w.interrupted_sync(d, at, kind, after)
        when = "after" if after else "before"
        return f"{d.name} sync killed {when} {kind} blob {at}" + ("" if fired else " (no kill)")

    @rule(rounds=st.just(10))
    @acting
    def settle(self, rounds: int) -> str:
        self.w.settle(rounds)
        return "settle and check"

    def teardown(self) -> None:
        try:
            if self.world is not None and not self.failed:
                note("final settle and check")
                self.w.settle()
        finally:
            if self.world is not None:
                self.world.close()


def test_client_sync_engine_keeps_the_model(stack: StackProcess,
                                            tmp_path_factory: pytest.TempPathFactory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    ClientMachine.server = stack.state["api"]
    ClientMachine.base = tmp_path_factory.mktemp("client-model")
    first = int(os.environ.get("SEALSYNC_HYPOTHESIS_SEED") or secrets.randbits(32))
    start, batch = Stats.steps, 0
    # hypothesis's cap on shrinking time is a module constant (internal):
    # set for this test only, if this version still has it.
    monkeypatch.setattr(hypothesis.internal.conjecture.engine, "MAX_SHRINKING_SECONDS",
                        SHRINK_S, raising=False)
    while batch == 0 or Stats.steps - start < TARGET_STEPS:
        run_seed = first + batch
        factory = seed(run_seed)(lambda: ClientMachine())
        try:
            run_state_machine_as_test(factory, settings=profile())
        except BaseException as exc:
            exc.add_note(f"reproduce: SEALSYNC_HYPOTHESIS_SEED={run_seed} "
                         f"SEALSYNC_HYPOTHESIS_PROFILE={PROFILE} "
                         f"SEALSYNC_CLIENT_SKIP={','.join(sorted(SKIP))} "
                         f"pytest tests/client_model")
            raise
        batch += 1
    print(f"\n{Stats.steps - start} client state-machine steps in {batch} batch(es), "
          f"first seed {first}")
    assert Stats.steps - start >= max(TARGET_STEPS, 1)
