"""Profiles, the stack and the step count of the client state machine.

SEALSYNC_HYPOTHESIS_PROFILE picks the profile, as for tests/property: `ci`
(the default, `make test`: 20 short runs, at most about 3 minutes) or
`long` (`make test-long`: batches of runs until at least
SEALSYNC_CLIENT_LONG_STEPS steps, 2,000 by default, were taken).
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.e2e.conftest import StackProcess, running_stack

PROFILE = os.environ.get("SEALSYNC_HYPOTHESIS_PROFILE", "ci")
LONG_STEPS = int(os.environ.get("SEALSYNC_CLIENT_LONG_STEPS", "2000"))
# Every example costs about a second (real folders, a real stack), so no
# explain phase (it replays many variants of the failure to annotate it).
_common = {"deadline": None, "print_blob": True, "derandomize": False,
           "phases": [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much]}
if os.environ.get("SEALSYNC_NO_SHRINK"):  # faster failure reports while iterating
    _common["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
# Shrinking stops after this many seconds (hypothesis's own cap is 300), so
# that a failing ci run stays within a few minutes.
SHRINK_S = int(os.environ.get("SEALSYNC_CLIENT_SHRINK_S") or {"ci": 90}.get(PROFILE, 300))
settings.register_profile("sealsync-client-ci", max_examples=20, stateful_step_count=20,
                          **_common)
settings.register_profile("sealsync-client-long", max_examples=25, stateful_step_count=40,
                          **_common)
TARGET_STEPS = {"ci": 0, "long": LONG_STEPS}[PROFILE]


def profile() -> settings:
    return settings.get_profile(f"sealsync-client-{PROFILE}")


class Stats:
    """What the machine did, over the whole session: a step is a rule call
    that acted (one that found nothing to act on is counted as idle)."""

    runs = 0
    steps = 0
    idle = 0
    by_rule: Counter[str] = Counter()
    kills = 0  # interrupted passes whose kill fired
    passes = 0  # sync passes run, settle rounds included


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("client-model-stack")) as sp:
        yield sp


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if Stats.runs:
        terminalreporter.write_line(
            f"client state machine ({PROFILE} profile): {Stats.steps} steps in {Stats.runs} "
            f"runs ({Stats.idle} idle rule calls not counted); {Stats.passes} sync passes, "
            f"{Stats.kills} killed")
        terminalreporter.write_line(f"  steps by rule: {dict(sorted(Stats.by_rule.items()))}")
