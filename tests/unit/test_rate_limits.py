"""Issue 15, abuse limits: token buckets on sign-up, enrolment and tokens
(core/ratelimit.py math, adapters/rate_limits.py on fakeredis here; the
real redis-server races are in tests/integration/test_rate_limits_real.py)."""
from __future__ import annotations

import secrets
from dataclasses import replace

import fakeredis
import pytest
import redis

from chalicelib import limits
from chalicelib.adapters.rate_limits import Buckets
from chalicelib.core.errors import TooManyRequests
from chalicelib.core.ratelimit import Bucket, Rates, Rule, take
from local import apiclient
from local.services import free_port
from tests.harness import Harness

SLOW = 1 / 3600  # one token an hour: nothing refills during a test


def test_a_bucket_allows_its_burst_then_the_refill_rate() -> None:
    rule = Rule("r", 3, 0.5)
    b: Bucket | None = None
    for _ in range(3):
        d = take(rule, b, 100.0)
        assert d.allowed
        b = d.bucket
    refused = take(rule, b, 100.0)
    assert not refused.allowed and refused.retry_after_s == 2  # 1 token at 0.5/s
    assert not take(rule, b, 101.9).allowed
    assert take(rule, b, 102.0).allowed
    assert take(rule, Bucket(0.0, 100.0), 10_000.0).bucket.tokens == 2  # capped at capacity
    assert not take(rule, Bucket(0.0, 100.0), 50.0).allowed  # a clock going back adds nothing
    assert rule.ttl_s() == 7


def test_scaling_keeps_names_and_multiplies_burst_and_rate() -> None:
    scaled = Rates().scaled(10)
    assert scaled.signup_ip.name == "signup-ip"
    assert scaled.signup_ip.capacity == Rates().signup_ip.capacity * 10
    with pytest.raises(ValueError):
        Rule("bad", 0, 1)


def _tight(h: Harness, **rules: Rule) -> None:
    h.rt.settings = replace(h.rt.settings, rates=replace(Rates().scaled(1000), **rules))


def test_signup_from_one_address_is_limited_with_retry_after(fast: Harness) -> None:
    _tight(fast, signup_ip=Rule("signup-ip", 3, SLOW))
    body = {"auth_key": secrets.token_hex(32), "kdf": "k"}
    assert [fast.post("/v1/accounts", body).status_code for _ in range(3)] == [201] * 3
    refused = fast.post("/v1/accounts", body)
    assert refused.status_code == 429 and refused.json_body["error"] == "rate_limited"
    assert 3000 <= int(refused.headers["Retry-After"]) <= 3600
    limits.charge_ip(fast.rt, "signup", "192.0.2.7")  # another address has its own bucket


def test_signups_spread_over_addresses_meet_the_global_bucket(fast: Harness) -> None:
    _tight(fast, signup_all=Rule("signup-all", 2, SLOW))
    limits.charge_ip(fast.rt, "signup", "192.0.2.1")
    limits.charge_ip(fast.rt, "signup", "192.0.2.2")
    with pytest.raises(TooManyRequests):
        limits.charge_ip(fast.rt, "signup", "192.0.2.3")


def test_enrolment_and_tokens_are_limited_per_account(fast: Harness) -> None:
    _tight(fast, devices_account=Rule("devices-account", 2, SLOW),
           tokens_account=Rule("tokens-account", 2, SLOW))
    dev = fast.signup()  # enrols one device: one token of the devices bucket

    def enrol() -> int:
        body = {"user_id": dev.user_id, "auth_key": dev.auth_key, **apiclient.enrolment(
            dev.user_id, dev.account_seed, secrets.token_bytes(32))}
        return int(fast.post("/v1/devices", body).status_code)

    assert [enrol(), enrol()] == [201, 429]
    login = {"user_id": dev.user_id, "auth_key": dev.auth_key, "device_id": dev.device_id}
    assert [fast.post("/v1/tokens", login).status_code for _ in range(3)] == [201, 201, 429]
    other = fast.signup()  # another account is untouched
    assert fast.post("/v1/tokens", {"user_id": other.user_id, "auth_key": other.auth_key,
                                    "device_id": other.device_id}).status_code == 201


def test_nobody_can_drain_another_accounts_bucket_by_naming_it(fast: Harness) -> None:
    """The per-account bucket is charged only after the auth_key is proven:
    failed logins that name the victim cost the victim nothing."""
    _tight(fast, tokens_account=Rule("tokens-account", 2, SLOW))
    victim = fast.signup()
    forged = {"user_id": victim.user_id, "auth_key": secrets.token_hex(32),
              "device_id": victim.device_id}
    assert {fast.post("/v1/tokens", forged).status_code for _ in range(10)} == {401}
    login = {"user_id": victim.user_id, "auth_key": victim.auth_key,
             "device_id": victim.device_id}
    assert fast.post("/v1/tokens", login).status_code == 201


def test_wrong_auth_keys_from_one_address_meet_the_address_bucket(fast: Harness) -> None:
    _tight(fast, tokens_ip=Rule("tokens-ip", 5, SLOW))
    dev = fast.signup()
    forged = {"user_id": dev.user_id, "auth_key": secrets.token_hex(32),
              "device_id": dev.device_id}
    codes = [fast.post("/v1/tokens", forged).status_code for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2


def test_redis_down_fails_open(fast: Harness) -> None:
    down = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=1,
                                socket_connect_timeout=1)
    fast.rt.__dict__["rate_buckets"] = Buckets(down, b"k" * 32)
    _tight(fast, signup_ip=Rule("signup-ip", 1, SLOW))
    body = {"auth_key": secrets.token_hex(32), "kdf": "k"}
    assert [fast.post("/v1/accounts", body).status_code for _ in range(3)] == [201] * 3


def test_keys_never_hold_the_address_in_clear() -> None:
    client = fakeredis.FakeRedis()
    Buckets(client, b"s" * 32).take(Rule("r", 2, 1), "203.0.113.9", 1.0)
    keys = [k.decode() for k in client.keys("*")]
    assert len(keys) == 1 and "203.0.113.9" not in keys[0] and keys[0].startswith("rl:r:")
