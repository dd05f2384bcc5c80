from __future__ import annotations

import pytest

from chalicelib.config import ConfigError, Settings
from tests.harness import TEST_ENV


def test_missing_configuration_names_what_is_missing() -> None:
    env = {k: v for k, v in TEST_ENV.items() if k != "SEALSYNC_REDIS_URL"}
    with pytest.raises(ConfigError, match="SEALSYNC_REDIS_URL"):
        Settings.from_env(env)


def test_short_secret_and_bad_numbers_are_refused() -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({**TEST_ENV, "SEALSYNC_TOKEN_SECRET": "short"})
    with pytest.raises(ConfigError, match="SEALSYNC_LOCK_TTL_MS"):
        Settings.from_env({**TEST_ENV, "SEALSYNC_LOCK_TTL_MS": "ten"})


def test_overrides() -> None:
    s = Settings.from_env({**TEST_ENV, "SEALSYNC_LOCK_TTL_MS": "250",
                           "SEALSYNC_LOCK_WAIT_S": "0.5"})
    assert (s.lock_ttl_ms, s.lock_wait_s) == (250, 0.5)


def test_app_import_does_not_build_clients() -> None:
    """Cold start: importing the app must not import boto3 or redis or open
    connections; they are built lazily, once per container."""
    import subprocess
    import sys

    code = ("import sys, app; "
            "print(sorted(m for m in ('boto3', 'redis', 'botocore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "."})
    assert out.stdout.strip() == "[]"
