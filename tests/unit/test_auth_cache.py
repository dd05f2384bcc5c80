"""API Gateway caches an authorizer's answer per token; a token that expires
while cached must still be refused by the handler."""
from __future__ import annotations

import time
import types

import pytest

from tests.harness import Harness


def test_token_expiring_behind_the_authorizer_cache_is_refused(
        fast: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    import app

    dev = fast.signup()
    assert fast.get("/v1/changes", dev).status_code == 200
    # The authorizer (chalicelib.api) still sees "now"; the handler sees a
    # moment after expiry, as it would when serving from the cached answer.
    later = time.time() + fast.rt.settings.token_ttl_s + 1
    monkeypatch.setattr(app, "time", types.SimpleNamespace(time=lambda: later))
    r = fast.get("/v1/changes", dev)
    assert r.status_code == 401
    assert "expired" in r.json_body["message"]
