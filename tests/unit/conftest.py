"""The `world` fixture of the bad-input tests (tests/unit/bad_input.py), and
`checked`: the harness with every answer validated against the OpenAPI
document (tests/openapi_support.py)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Harness
from tests.openapi_support import CheckedClient, CheckedHTTP
from tests.unit.bad_input import World, make_world


@pytest.fixture
def world(fast: Harness) -> World:
    return make_world(fast)


@pytest.fixture
def checked(fast: Harness) -> Iterator[tuple[Harness, CheckedHTTP]]:
    """The harness, with every HTTP call it makes validated."""
    client = CheckedClient(fast.http)
    fast.http = client  # type: ignore[assignment]
    yield fast, client.http
