"""API fuzzing (issue 7): schemathesis generates requests from the OpenAPI
document the running local stack serves, valid and invalid, sent with a
valid token, a forged one, an expired-looking one and none. Every answer
must be a non-5xx response whose status, content type, headers and body
match the document.

The number of examples follows the profile (tests/property/conftest.py):
`ci` keeps `make test` short, `long` (`make test-long`) runs many more.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local.apiclient import enrolment, public_key
from tests.e2e.conftest import StackProcess, running_stack
from tests.property.conftest import FUZZ_EXAMPLES

pytestmark = pytest.mark.e2e
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("fuzz-stack")) as sp:
        yield sp


def _valid_token(api: str) -> str:
    auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
    r = requests.post(f"{api}/v1/accounts", json={
        "auth_key": auth_key, "kdf": "x", "signing_key": public_key(account_seed)}, timeout=30)
    user_id = r.json()["user_id"]
    r = requests.post(f"{api}/v1/devices", json={
        "user_id": user_id, "auth_key": auth_key,
        **enrolment(user_id, account_seed, secrets.token_bytes(32))}, timeout=30)
    return str(r.json()["token"])


def _tokens(valid: str) -> dict[str, str | None]:
    forged = valid[:-4] + ("AAAA" if not valid.endswith("AAAA") else "BBBB")
    return {"valid": valid, "forged": forged, "garbage": "not-a-token", "none": None}


def _no_long_polls(case: Any) -> None:
    """`wait` holds the request up to 20 s when nothing happens; the fuzzer
    keeps valid waits at 0 (the long poll has its own tests)."""
    query = case.query if isinstance(case.query, dict) else None
    if query and isinstance(query.get("wait"), int) and not isinstance(query["wait"], bool):
        query["wait"] = 0


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid-input", "invalid-input"])
def test_fuzzed_requests_get_no_5xx_and_match_the_schema(
        stack: StackProcess, tmp_path: Path, mode: GenerationMode) -> None:
    api = stack.state["api"]
    schema = schemathesis.openapi.from_url(f"{api}/v1/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    tokens = _tokens(_valid_token(api))
    session = requests.Session()
    seen: dict[tuple[str, str], set[int]] = {}

    def send(case: Any, token: str) -> None:
        _no_long_polls(case)
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        if tokens[token] is not None:
            headers["Authorization"] = f"Bearer {tokens[token]}"
        case.headers = headers
        response = case.call(base_url=api, session=session, timeout=30)
        seen.setdefault((case.method, case.path), set()).add(response.status_code)
        case.validate_response(response, checks=CHECKS)

    # One run per operation, so each gets its share of examples (one strategy
    # over all of them left a route unvisited by chance as routes were added).
    for op in operations:
        fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(
            given(case=op.as_strategy(mode), token=st.sampled_from(sorted(tokens)))(send))
        fuzz()

    print(f"\n{mode.value}: status codes seen per operation: "
          f"{ {f'{m} {p}': sorted(c) for (m, p), c in sorted(seen.items())} }")
    # every operation was reached, and the 401 path was exercised
    assert {(op.method.upper(), op.path) for op in operations} <= set(seen)
    assert any(401 in codes for codes in seen.values())
