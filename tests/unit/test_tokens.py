from __future__ import annotations

import pytest

from chalicelib.core import tokens
from chalicelib.core.errors import BadRequest, Unauthorized

KEY = b"k" * 32
U, D = "a" * 32, "b" * 32


def test_issue_then_verify() -> None:
    t = tokens.issue(KEY, U, D, now=1000, ttl_s=60)
    assert tokens.verify(KEY, t, now=1059) == tokens.Claims(U, D, 1060)


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # forged mac
    lambda t: "v2" + t[2:],  # unknown version
    lambda t: t.replace(".", "", 1),  # malformed
    lambda t: "",
    lambda t: t + "." + t,
    lambda t: "x" * 600,
])
def test_tampered_tokens_fail_the_same_way(mutate: object) -> None:
    t = tokens.issue(KEY, U, D, now=1000, ttl_s=60)
    with pytest.raises(Unauthorized, match="missing, malformed, forged or expired"):
        tokens.verify(KEY, mutate(t), now=1000)  # type: ignore[operator]


def test_expired_and_wrong_key() -> None:
    t = tokens.issue(KEY, U, D, now=1000, ttl_s=60)
    with pytest.raises(Unauthorized):
        tokens.verify(KEY, t, now=1060)
    with pytest.raises(Unauthorized):
        tokens.verify(b"j" * 32, t, now=1000)


def test_payload_cannot_be_swapped_under_a_valid_mac() -> None:
    a = tokens.issue(KEY, U, D, now=1000, ttl_s=60).split(".")
    b = tokens.issue(KEY, D, U, now=1000, ttl_s=60).split(".")
    with pytest.raises(Unauthorized):
        tokens.verify(KEY, ".".join([a[0], b[1], a[2]]), now=1000)


def test_verifier_matches_only_the_secret() -> None:
    salt, secret = b"s" * 16, bytes(range(32))
    stored = tokens.verifier(salt, secret)
    assert stored != secret and len(stored) == 32
    assert tokens.matches(salt, secret, stored)
    assert not tokens.matches(salt, bytes(32), stored)
    assert not tokens.matches(b"t" * 16, secret, stored)


@pytest.mark.parametrize("bad", [None, "ab" * 31, "AB" * 32, "zz" * 32, 7])
def test_auth_key_shape(bad: object) -> None:
    with pytest.raises(BadRequest, match="auth_key"):
        tokens.check_auth_key(bad)
