"""Profiles for the randomized tests, and the step count they report.

SEALSYNC_HYPOTHESIS_PROFILE picks one: `ci` (the default, `make test`: a
few short runs, well under a minute) or `long` (`make test-long`: runs
until at least LONG_STEPS state-machine steps were taken). Profiles are
applied to these tests only, never loaded globally.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.integration.conftest import moto_server, redis_server  # noqa: F401 - fixtures

PROFILE = os.environ.get("SEALSYNC_HYPOTHESIS_PROFILE", "ci")
LONG_STEPS = int(os.environ.get("SEALSYNC_LONG_STEPS", "10000"))
_common = {"deadline": None, "print_blob": True, "derandomize": False,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much]}
if os.environ.get("SEALSYNC_NO_SHRINK"):  # faster failure reports while iterating
    _common["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
settings.register_profile("sealsync-ci", max_examples=8, stateful_step_count=30, **_common)
settings.register_profile("sealsync-long", max_examples=40, stateful_step_count=60, **_common)
# the schemathesis fuzzing: examples per API operation
FUZZ_EXAMPLES = {"ci": 15, "long": 400}[PROFILE]
# steps the stateful test must reach before it stops
TARGET_STEPS = {"ci": 0, "long": LONG_STEPS}[PROFILE]


def profile() -> settings:
    return settings.get_profile(f"sealsync-{PROFILE}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.property.machine import Stats

    if Stats.runs:
        terminalreporter.write_line(
            f"commit state machine ({PROFILE} profile): {Stats.steps} steps in {Stats.runs} "
            f"runs ({Stats.idle} idle rule calls not counted); {Stats.deliveries} deliveries, "
            f"{Stats.crashes} injected crashes, "
            f"{Stats.interferences} lock expiries/Redis restarts/nested handlers/staging "
            f"swaps mid-commit ({Stats.swaps} staged objects swapped)")
        terminalreporter.write_line(f"  steps by rule: {dict(sorted(Stats.by_rule.items()))}")
        terminalreporter.write_line(f"  batches by pack: {dict(sorted(Stats.packs.items()))}; "
                                    f"entries sent as ranges of their base: {Stats.ranged}")
        terminalreporter.write_line(f"  objects the gc job deleted: {Stats.collected}, "
                                    f"packs it repacked: {Stats.repacked}, revisions expired: "
                                    f"{Stats.expired}")
