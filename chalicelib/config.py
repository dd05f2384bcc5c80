"""Settings read once from the environment, and clients built once per
container: never a Redis or AWS client per request (cold start and the
store's CPU both pay for that).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .core.metering import Prices
from .core.ratelimit import Rates
from .core.regions import RegionConfigError, RegionMap
from .core.requests import Limits

if TYPE_CHECKING:  # heavy imports stay out of the cold start path
    import redis as redis_lib

    from .adapters.accounts import Accounts
    from .adapters.batches import Batches
    from .adapters.billing_store import BillingStore
    from .adapters.blobs import Blobs
    from .adapters.connections import Registry
    from .adapters.devices import Devices
    from .adapters.directory import Directory
    from .adapters.gc_store import GcStore
    from .adapters.mailer import Mailer
    from .adapters.meta import Meta
    from .adapters.mobile import Mobile
    from .adapters.packs import Packs
    from .adapters.pairings import Pairings
    from .adapters.payments import Payments
    from .adapters.rate_limits import Buckets
    from .adapters.redis_lock import Locks
    from .adapters.tickets import Tickets
    from .adapters.usage import Usage
    from .adapters.wakeups import Waker
    from .push import Notifier, WsSender


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


class Runtime:
    """Everything a handler needs, built lazily and then reused."""

    def __init__(self, settings: Settings) -> None:
        # An unresolved reference would leave an empty HMAC key: refuse it.
        if settings.token_secret_ref or settings.redis_token_ref or not settings.token_secret:
            raise ConfigError("secret references are not resolved: use runtime() or "
                              "Settings.resolved()")
        self.settings = settings

    def _boto(self, service: str, region: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(retries={"max_attempts": 3, "mode": "standard"},
                     max_pool_connections=32, s3={"addressing_style": "path"})
        if service == "s3":  # presigned URLs must be SigV4 (signed headers)
            cfg = cfg.merge(Config(signature_version="s3v4"))
        session: Any = boto3.session.Session()
        return session.client(service, region_name=region or self.settings.region,
                              endpoint_url=self.settings.aws_endpoint, config=cfg)

    @cached_property
    def s3(self) -> Any:
        return self._boto("s3")

    @cached_property
    def dynamodb(self) -> Any:
        return self._boto("dynamodb")

    @cached_property
    def redis(self) -> redis_lib.Redis:
        """Short operations (locks, wake-ups): fail fast when Redis is down.
        One quick retry only: a failed event is retried by SQS anyway, and
        redis-py's default (10 retries with backoff) would stall ~4 s."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=2, socket_connect_timeout=2,
            max_connections=64, health_check_interval=30, retry=Retry(NoBackoff(), 1))

    @cached_property
    def redis_blocking(self) -> redis_lib.Redis:
        """Long-poll waits hold a connection for up to max_wait_s."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis.from_url(
            self.settings.redis_url,
            socket_timeout=self.settings.limits.max_wait_s + 5,
            socket_connect_timeout=2, max_connections=256, retry=Retry(NoBackoff(), 0))

    @cached_property
    def blobs(self) -> Blobs:
        from .adapters.blobs import Blobs

        return Blobs(self.s3, self.settings.bucket, self.settings.upload_ttl_s)

    @cached_property
    def gc(self) -> GcStore:
        from .adapters.gc_store import GcStore

        return GcStore(self.dynamodb, self.settings.table)

    @cached_property
    def meta(self) -> Meta:
        from .adapters.meta import Meta

        return Meta(self.dynamodb, self.settings.table)

    @cached_property
    def batches(self) -> Batches:
        from .adapters.batches import Batches

        return Batches(self.dynamodb, self.settings.table)

    @cached_property
    def packs(self) -> Packs:
        from .adapters.packs import Packs

        return Packs(self.dynamodb, self.settings.table)

    @cached_property
    def accounts(self) -> Accounts:
        from .adapters.accounts import Accounts

        return Accounts(self.dynamodb, self.settings.table)

    @cached_property
    def directory(self) -> Directory | None:
        """The global directory (chalicelib/regions.py); None in one region."""
        s = self.settings
        if not s.directory_table:
            return None
        from .adapters.directory import Directory

        writer = self.dynamodb if s.directory_region in (None, s.region) \
            else self._boto("dynamodb", s.directory_region)
        return Directory(self.dynamodb, writer, s.directory_table)

    @cached_property
    def devices(self) -> Devices:
        from .adapters.devices import Devices

        return Devices(self.dynamodb, self.settings.table)

    @cached_property
    def billing(self) -> BillingStore:
        from .adapters.billing_store import BillingStore

        return BillingStore(self.dynamodb, self.settings.table)

    @cached_property
    def mailer(self) -> Mailer:
        from .adapters.mailer import Mailer

        return Mailer(self._boto("ses"), self.billing, self.settings.mail_from,
                      self.settings.mail_config_set)

    @cached_property
    def payments(self) -> Payments:
        """Stripe: built (and the SDK imported) by the billing handlers only."""
        from .adapters.payments import Payments
        from .core.errors import Unavailable

        s = self.settings
        if s.stripe_key_ref or s.stripe_webhook_secret_ref:
            s = s.with_stripe(lambda ref: fetch_secret(s, ref))
        if not s.stripe_key:
            raise Unavailable("billing is not configured on this server")
        return Payments(s.stripe_key, s.stripe_api_base, s.stripe_webhook_secret)

    @cached_property
    def usage(self) -> Usage:
        from .adapters.usage import Usage

        return Usage(self.dynamodb, self.settings.table)

    @cached_property
    def locks(self) -> Locks:
        from .adapters.redis_lock import Locks

        return Locks(self.redis, self.settings.lock_ttl_ms, self.settings.lock_wait_s)

    @cached_property
    def rate_buckets(self) -> Buckets:
        from .adapters.rate_limits import Buckets

        return Buckets(self.redis, self.settings.token_secret)

    @cached_property
    def pairings(self) -> Pairings:
        from .adapters.pairings import Pairings

        return Pairings(self.redis)

    @cached_property
    def tickets(self) -> Tickets:
        from .adapters.tickets import Tickets

        return Tickets(self.redis)

    @cached_property
    def waker(self) -> Waker:
        from .adapters.wakeups import Waker

        return Waker(self.redis, self.redis_blocking)

    # -- push (docs/PUSH.md) ---------------------------------------------------
    @cached_property
    def registry(self) -> Registry:
        from .adapters.connections import Registry

        return Registry(self.dynamodb, self.settings.table)

    @cached_property
    def ws_sender(self) -> WsSender:
        from .push import WsSender

        return WsSender(self._ws_client, self.settings.ws_endpoint)

    def _ws_client(self, endpoint: str) -> Any:
        """A management API client with short timeouts: a slow gateway must
        not hold a commit for long."""
        import boto3
        from botocore.config import Config

        cfg = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2,
                     read_timeout=3, max_pool_connections=32)
        session: Any = boto3.session.Session()
        return session.client("apigatewaymanagementapi", region_name=self.settings.region,
                              endpoint_url=endpoint, config=cfg)

    @cached_property
    def mobile(self) -> Mobile:
        from .adapters.mobile import Mobile

        return Mobile(self._boto("sns"), self.settings.push_apps)

    @cached_property
    def notifier(self) -> Notifier:
        from .push import Notifier

        return Notifier(self)


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The container's one Runtime (settings read on first use)."""
    global _runtime
    with _lock:
        if _runtime is None:
            settings = Settings.from_env()
            _runtime = Runtime(settings.resolved(partial(fetch_secret, settings)))
        return _runtime


def set_runtime(rt: Runtime | None) -> None:
    """Install a Runtime (tests, the local stack) or clear it."""
    global _runtime
    with _lock:
        _runtime = rt
