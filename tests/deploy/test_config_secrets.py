"""Deployed configuration: secrets by reference (SSM / Secrets Manager),
read once per container in runtime(), never at import; clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from chalicelib import config
from chalicelib.config import ConfigError, Settings, fetch_secret, runtime, with_password
from tests.harness import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s" * 40
DEPLOYED = {k: v for k, v in TEST_ENV.items() if k != "SEALSYNC_TOKEN_SECRET"} | {
    "SEALSYNC_REDIS_URL": "rediss://cache.example:6379/0",
    "SEALSYNC_TOKEN_SECRET_REF": "ssm:/sealsync/test/token-secret",
    "SEALSYNC_REDIS_TOKEN_REF": "secretsmanager:sealsync/test/redis-token",
}


@pytest.fixture
def secrets_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, TEST_ENV[name])
    with mock_aws():
        boto3.client("ssm", region_name="us-east-1").put_parameter(
            Name="/sealsync/test/token-secret", Value=SECRET, Type="SecureString")
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="sealsync/test/redis-token", SecretString="tok/en+with@odd:chars")
        yield


def test_references_are_resolved_from_ssm_and_secrets_manager(secrets_store: None) -> None:
    s = Settings.from_env(DEPLOYED)
    assert s.token_secret == b"" and s.token_secret_ref  # nothing fetched yet
    r = s.resolved(lambda ref: fetch_secret(s, ref))
    assert r.token_secret == SECRET.encode()
    assert r.redis_url == "rediss://:tok%2Fen%2Bwith%40odd%3Achars@cache.example:6379/0"
    import redis

    parsed = redis.connection.parse_url(r.redis_url)
    assert parsed["password"] == "tok/en+with@odd:chars"
    assert (parsed["host"], parsed["port"]) == ("cache.example", 6379)


def test_runtime_fetches_each_secret_once_per_container(
        secrets_store: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in DEPLOYED.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SEALSYNC_TOKEN_SECRET", raising=False)
    calls: list[str] = []
    real = config.fetch_secret

    def counting(settings: Settings, ref: str) -> str:
        calls.append(ref)
        return real(settings, ref)

    monkeypatch.setattr(config, "fetch_secret", counting)
    config.set_runtime(None)
    try:
        first = runtime()
        assert runtime() is first and first.settings.token_secret == SECRET.encode()
        assert sorted(calls) == sorted([DEPLOYED["SEALSYNC_TOKEN_SECRET_REF"],
                                        DEPLOYED["SEALSYNC_REDIS_TOKEN_REF"]])
    finally:
        config.set_runtime(None)


def test_a_missing_or_unreadable_secret_fails_with_its_name(secrets_store: None) -> None:
    s = Settings.from_env({**DEPLOYED, "SEALSYNC_TOKEN_SECRET_REF": "ssm:/nope"})
    with pytest.raises(ConfigError, match=r"cannot read secret ssm:/nope: ParameterNotFound"):
        s.resolved(lambda ref: fetch_secret(s, ref))
    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/short", Value="x" * 31, Type="SecureString")
    s = Settings.from_env({**DEPLOYED, "SEALSYNC_TOKEN_SECRET_REF": "ssm:/short"})
    with pytest.raises(ConfigError, match="ssm:/short: the token secret must be at least 32"):
        s.resolved(lambda ref: fetch_secret(s, ref))


@pytest.mark.parametrize(("change", "message"), [
    ({"SEALSYNC_TOKEN_SECRET_REF": ""}, r"missing configuration: SEALSYNC_TOKEN_SECRET \(or"),
    ({"SEALSYNC_TOKEN_SECRET": SECRET}, "not both"),
    ({"SEALSYNC_TOKEN_SECRET_REF": "vault:/x"}, "must be ssm:/parameter/name"),
    ({"SEALSYNC_REDIS_TOKEN_REF": "ssm:"}, "must be ssm:/parameter/name"),
    ({"SEALSYNC_REDIS_URL": "redis://cache:6379/0"}, "needs a rediss:// .TLS."),
    ({"SEALSYNC_REDIS_URL": "http://cache"}, "must be redis://, rediss://"),
    ({"SEALSYNC_RECORD_TTL_S": "week"}, "SEALSYNC_RECORD_TTL_S must be a number"),
])
def test_bad_deployed_configuration_is_refused_clearly(change: dict[str, str],
                                                       message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({**DEPLOYED, **change})


def test_with_password_keeps_an_rbac_user() -> None:
    assert with_password("rediss://app:old@h:6379/0", "n w") == "rediss://app:n%20w@h:6379/0"
    assert with_password("rediss://h:6379", "t") == "rediss://:t@h:6379"


def test_every_stage_in_chalice_config_loads_and_holds_no_secret() -> None:
    """Each stage's environment (global + stage) passes from_env, names its
    secrets by reference only, and uses TLS to Redis."""
    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert set(cfg["stages"]) >= {"dev", "prod"}
    for name, stage in cfg["stages"].items():
        env = {**cfg.get("environment_variables", {}), **stage["environment_variables"]}
        assert "SEALSYNC_TOKEN_SECRET" not in env, name
        s = Settings.from_env(env)
        assert s.token_secret_ref and s.token_secret_ref.startswith(("ssm:", "secretsmanager:"))
        assert s.redis_url.startswith("rediss://") and s.redis_token_ref, name
        assert name in s.bucket and name in s.table, name


def test_import_app_still_loads_no_aws_or_redis_with_deployed_settings() -> None:
    code = ("import sys, app; "
            "print(sorted(m for m in ('boto3', 'redis', 'botocore') if m in sys.modules))")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **DEPLOYED}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_a_runtime_never_starts_with_an_unresolved_secret() -> None:
    """Unresolved, the token secret is empty: tokens would be signed with no key."""
    with pytest.raises(ConfigError, match="not resolved"):
        config.Runtime(Settings.from_env(DEPLOYED))
