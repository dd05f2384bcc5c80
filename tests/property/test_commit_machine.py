"""The commit pipeline under randomized interleavings and faults, on a moto
server and a real redis-server (see machine.py for the rules, model.py for
the invariants). Reproduce a failure with the seed it reports:
SEALSYNC_HYPOTHESIS_SEED=N .venv/bin/pytest tests/property -x
"""
from __future__ import annotations

import os
import secrets

import pytest
from hypothesis import seed
from hypothesis.stateful import run_state_machine_as_test

from local.moto import MotoServer
from local.services import RedisServer
from tests.property.conftest import PROFILE, TARGET_STEPS, profile
from tests.property.machine import CommitMachine, Stats

pytestmark = pytest.mark.integration


def test_commit_pipeline_keeps_invariants_under_faults(
        moto_server: MotoServer, redis_server: RedisServer) -> None:
    CommitMachine.moto, CommitMachine.redis = moto_server, redis_server
    first = int(os.environ.get("SEALSYNC_HYPOTHESIS_SEED") or secrets.randbits(32))
    start, batch = Stats.steps, 0
    while batch == 0 or Stats.steps - start < TARGET_STEPS:
        run_seed = first + batch
        factory = seed(run_seed)(lambda: CommitMachine())
        try:
            run_state_machine_as_test(factory, settings=profile())
        except BaseException as exc:
            exc.add_note(f"reproduce: SEALSYNC_HYPOTHESIS_SEED={run_seed} "
                         f"SEALSYNC_HYPOTHESIS_PROFILE={PROFILE} pytest tests/property")
            raise
        batch += 1
    print(f"\n{Stats.steps - start} state-machine steps in {batch} batch(es), "
          f"first seed {first}")
    assert Stats.steps - start >= max(TARGET_STEPS, 1)
