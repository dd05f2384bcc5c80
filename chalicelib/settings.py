"""The deployment's settings: read once from the environment, checked,
and refused with a message naming the setting (ConfigError) when missing or
malformed. Secrets arrive as themselves or as ssm:/secretsmanager:
references that `fetch_secret` reads. Pure parsing: no client is built
here; `config.py`'s Runtime builds those from a Settings.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from .core.metering import Prices
from .core.ratelimit import Rates
from .core.regions import RegionConfigError, RegionMap
from .core.requests import Limits


class ConfigError(RuntimeError):
    """The deployment is missing a setting; the message names it."""


REQUIRED = ("SEALSYNC_BUCKET", "SEALSYNC_TABLE", "SEALSYNC_REDIS_URL")
# A secret is given as itself (local stack, tests) or, deployed, as a
# reference read once per container: "ssm:/path" (a SecureString) or
# "secretsmanager:name-or-arn". Templates and config.json never hold it.
SECRET_SOURCES = ("ssm:", "secretsmanager:")
MIN_SECRET = 32
PUSH_APP_VARS = {"apns": "SEALSYNC_PUSH_APNS_ARN", "apns_sandbox": "SEALSYNC_PUSH_APNS_SANDBOX_ARN",
                 "fcm": "SEALSYNC_PUSH_FCM_ARN"}


@dataclass(frozen=True)
class Settings:
    bucket: str
    table: str
    redis_url: str
    token_secret: bytes
    region: str = "us-east-1"
    aws_endpoint: str | None = None
    token_ttl_s: int = 12 * 3600
    upload_ttl_s: int = 3600
    lock_ttl_ms: int = 10_000
    lock_wait_s: float = 5.0
    sweep_after_s: int = 3600 + 300
    record_ttl_s: int = 7 * 24 * 3600
    gc_grace_s: int = 24 * 3600  # core/gc.py GRACE_S: why a day
    # superseded and deleted versions expire after this many days; 0 = keep
    # forever (core/retention.py)
    retention_days: int = 30
    limits: Limits = field(default_factory=Limits)
    token_secret_ref: str | None = None
    redis_token_ref: str | None = None
    ws_endpoint: str | None = None  # management API override (the local stack)
    ws_url: str | None = None  # the public wss:// URL clients connect to
    push_apps: dict[str, str] = field(default_factory=dict)  # platform -> SNS app ARN
    rates: Rates = field(default_factory=Rates)  # abuse limits on the public routes
    # the back office (docs/OPERATIONS.md, "Billing"): unset key = billing off
    stripe_key: str | None = None
    stripe_key_ref: str | None = None  # ssm:/... or secretsmanager:... (deployed stages)
    stripe_webhook_secret_ref: str | None = None
    mail_config_set: str | None = None  # SES configuration set: bounces/complaints -> SNS
    stripe_api_base: str | None = None  # localstripe's URL locally; unset in AWS
    stripe_webhook_secret: str = ""
    mail_from: str = "Sealsync <no-reply@sealsync.invalid>"
    grace_days: int = 14
    trial_days: int = 30
    prices: Prices = field(default_factory=Prices)  # what the operator charges
    # home regions (docs/OPERATIONS.md, "Regions"): unset = one region, no directory
    regions: RegionMap = field(default_factory=lambda: RegionMap.single("us-east-1"))
    directory_table: str | None = None
    directory_region: str | None = None  # the replica every claim goes to

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        missing = [name for name in REQUIRED if not env.get(name)]
        secret_ref = _secret_ref(env, "SEALSYNC_TOKEN_SECRET_REF")
        if not env.get("SEALSYNC_TOKEN_SECRET") and not secret_ref:
            missing.append("SEALSYNC_TOKEN_SECRET (or SEALSYNC_TOKEN_SECRET_REF)")
        if missing:
            raise ConfigError("missing configuration: " + ", ".join(missing)
                              + " (see .chalice/config.json and docs/OPERATIONS.md)")
        if env.get("SEALSYNC_TOKEN_SECRET") and secret_ref:
            raise ConfigError("set SEALSYNC_TOKEN_SECRET or SEALSYNC_TOKEN_SECRET_REF, not both")
        secret = env.get("SEALSYNC_TOKEN_SECRET", "").encode()
        if not secret_ref:
            _check_secret(secret)
        redis_ref = _secret_ref(env, "SEALSYNC_REDIS_TOKEN_REF")
        scheme = env["SEALSYNC_REDIS_URL"].split("://", 1)[0]
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("SEALSYNC_REDIS_URL must be redis://, rediss:// or unix://")
        if redis_ref and scheme != "rediss":
            raise ConfigError("SEALSYNC_REDIS_TOKEN_REF needs a rediss:// (TLS) "
                              "SEALSYNC_REDIS_URL: an auth token never travels in clear")

        def num(name: str, default: float) -> Any:
            raw = env.get(name)
            try:
                return type(default)(raw) if raw else default
            except ValueError as exc:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from exc

        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        try:
            regions = RegionMap.parse(region, env.get("SEALSYNC_REGIONS"),
                                      env.get("SEALSYNC_REGIONS_DOWN"))
        except RegionConfigError as exc:
            raise ConfigError(str(exc)) from exc
        directory = env.get("SEALSYNC_DIRECTORY_TABLE") or None
        if regions.multi and not directory:
            raise ConfigError("SEALSYNC_REGIONS lists several regions: set "
                              "SEALSYNC_DIRECTORY_TABLE (the global directory)")
        return cls(
            bucket=env["SEALSYNC_BUCKET"],
            table=env["SEALSYNC_TABLE"],
            redis_url=env["SEALSYNC_REDIS_URL"],
            token_secret=secret,
            region=region, regions=regions, directory_table=directory,
            directory_region=env.get("SEALSYNC_DIRECTORY_REGION") or regions.regions[0].name,
            aws_endpoint=env.get("SEALSYNC_AWS_ENDPOINT") or None,
            token_ttl_s=num("SEALSYNC_TOKEN_TTL_S", 12 * 3600),
            upload_ttl_s=num("SEALSYNC_UPLOAD_TTL_S", 3600),
            lock_ttl_ms=num("SEALSYNC_LOCK_TTL_MS", 10_000),
            lock_wait_s=num("SEALSYNC_LOCK_WAIT_S", 5.0),
            sweep_after_s=num("SEALSYNC_SWEEP_AFTER_S", 3600 + 300),
            record_ttl_s=num("SEALSYNC_RECORD_TTL_S", 7 * 24 * 3600),
            gc_grace_s=num("SEALSYNC_GC_GRACE_S", 24 * 3600),
            retention_days=_retention_days(env.get("SEALSYNC_RETENTION_DAYS")),
            token_secret_ref=secret_ref, redis_token_ref=redis_ref,
            ws_endpoint=env.get("SEALSYNC_WS_ENDPOINT") or None,
            ws_url=env.get("SEALSYNC_WS_URL") or None,
            push_apps={p: env[v] for p, v in PUSH_APP_VARS.items() if env.get(v)},
            rates=Rates().scaled(_positive(num("SEALSYNC_RATE_SCALE", 1.0),
                                           "SEALSYNC_RATE_SCALE")),
            stripe_key=env.get("SEALSYNC_STRIPE_KEY") or None,
            stripe_api_base=env.get("SEALSYNC_STRIPE_API_BASE") or None,
            stripe_webhook_secret=env.get("SEALSYNC_STRIPE_WEBHOOK_SECRET", ""),
            stripe_key_ref=_secret_ref(env, "SEALSYNC_STRIPE_KEY_REF"),
            stripe_webhook_secret_ref=_secret_ref(env, "SEALSYNC_STRIPE_WEBHOOK_SECRET_REF"),
            mail_config_set=env.get("SEALSYNC_MAIL_CONFIG_SET") or None,
            mail_from=env.get("SEALSYNC_MAIL_FROM") or cls.mail_from,
            grace_days=num("SEALSYNC_GRACE_DAYS", 14),
            trial_days=num("SEALSYNC_TRIAL_DAYS", 30),
            prices=_prices(env.get("SEALSYNC_PRICES"), env.get("SEALSYNC_QUOTA_BYTES")),
        )

    def resolved(self, fetch: Callable[[str], str]) -> Settings:
        """These settings with every secret reference read through `fetch`
        (one call each: runtime() does this once per container)."""
        out = self
        if self.token_secret_ref:
            secret = fetch(self.token_secret_ref).encode()
            _check_secret(secret, self.token_secret_ref)
            out = replace(out, token_secret=secret, token_secret_ref=None)
        if self.redis_token_ref:
            url = with_password(self.redis_url, fetch(self.redis_token_ref))
            out = replace(out, redis_url=url, redis_token_ref=None)
        return out

    def with_stripe(self, fetch: Callable[[str], str]) -> Settings:
        """The Stripe secrets read through `fetch`: only when a billing
        handler first needs them, so the API and commit paths never pay
        for the two reads."""
        out = self
        if self.stripe_key_ref:
            out = replace(out, stripe_key=fetch(self.stripe_key_ref), stripe_key_ref=None)
        if self.stripe_webhook_secret_ref:
            out = replace(out, stripe_webhook_secret=fetch(self.stripe_webhook_secret_ref),
                          stripe_webhook_secret_ref=None)
        return out


def _prices(raw: str | None, quota: str | None = None) -> Prices:
    """SEALSYNC_PRICES: JSON of core.metering.Prices fields (US cents), e.g.
    {"storage_gb_month": 2.5}; unset: the defaults (docs/ACCOUNT.md).
    SEALSYNC_QUOTA_BYTES, if set, is the storage quota (0: none), whatever
    SEALSYNC_PRICES says."""
    prices = _price_fields(raw)
    if not quota:
        return prices
    if not (quota.isascii() and quota.isdigit()) or len(quota) > 18:
        raise ConfigError(f"SEALSYNC_QUOTA_BYTES must be a whole number of bytes, got {quota!r}")
    return replace(prices, quota_bytes=int(quota))


def _price_fields(raw: str | None) -> Prices:
    if not raw:
        return Prices()
    import json

    try:
        fields = json.loads(raw)
        prices = Prices(**{k: type(getattr(Prices(), k))(v) for k, v in fields.items()})
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError(f"SEALSYNC_PRICES must be a JSON object of Prices fields: {exc}") \
            from exc
    return prices


def _secret_ref(env: dict[str, str], name: str) -> str | None:
    ref = env.get(name) or None
    if ref and not (ref.startswith(SECRET_SOURCES) and ref.split(":", 1)[1]):
        raise ConfigError(f"{name} must be ssm:/parameter/name or secretsmanager:id, "
                          f"got {ref!r}")
    return ref


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _check_secret(secret: bytes, source: str = "SEALSYNC_TOKEN_SECRET") -> None:
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"{source}: the token secret must be at least "
                          f"{MIN_SECRET} characters")


def with_password(url: str, password: str) -> str:
    """The Redis URL with the auth token as its password (URL-quoted; a
    user name already in the URL, for ElastiCache RBAC, is kept)."""
    scheme, rest = url.split("://", 1)
    user = rest.rsplit("@", 1)[0].split(":", 1)[0] if "@" in rest else ""
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}"


def fetch_secret(settings: Settings, ref: str) -> str:
    """Read one secret from SSM Parameter Store or Secrets Manager. A
    failure is a ConfigError naming the reference (never the value)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    source, name = ref.split(":", 1)
    service = "ssm" if source == "ssm" else "secretsmanager"
    session: Any = boto3.session.Session()
    client = session.client(service, region_name=settings.region,
                            endpoint_url=settings.aws_endpoint)
    try:
        if service == "ssm":
            return str(client.get_parameter(Name=name, WithDecryption=True)
                       ["Parameter"]["Value"])
        return str(client.get_secret_value(SecretId=name)["SecretString"])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ConfigError(f"cannot read secret {ref}: {code}") from exc
    except BotoCoreError as exc:
        raise ConfigError(f"cannot read secret {ref}: {type(exc).__name__}") from exc


def _retention_days(raw: str | None) -> int:
    """SEALSYNC_RETENTION_DAYS: how long superseded and deleted versions stay
    restorable, in whole days (default 30); 0 keeps every version forever
    (core/retention.py: the safe reading of a missing number)."""
    if not raw:
        return 30
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        raise ConfigError(f"SEALSYNC_RETENTION_DAYS must be a whole number of days "
                          f"(0: keep forever), got {raw!r}")
    return int(raw)
