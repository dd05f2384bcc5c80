"""The `world` fixture of the bad-input tests (tests/unit/bad_input.py)."""
from __future__ import annotations

import pytest

from tests.harness import Harness
from tests.unit.bad_input import World, make_world


@pytest.fixture
def world(fast: Harness) -> World:
    return make_world(fast)
