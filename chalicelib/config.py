"""Clients built once per container from the Settings (`settings.py`):
never a Redis or AWS client per request (cold start and the store's CPU
both pay for that). Every client and adapter is built lazily on first use,
so a handler imports only what it touches.
"""
from __future__ import annotations

import threading
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

from .settings import (  # re-exported: importers use chalicelib.config
    MIN_SECRET,
    PUSH_APP_VARS,
    REQUIRED,
    SECRET_SOURCES,
    ConfigError,
    Settings,
    fetch_secret,
    with_password,
)

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
    from .adapters.retention_store import RetentionStore
    from .adapters.tickets import Tickets
    from .adapters.usage import Usage
    from .adapters.wakeups import Waker
    from .push import Notifier, WsSender

__all__ = ["MIN_SECRET", "PUSH_APP_VARS", "REQUIRED", "SECRET_SOURCES", "ConfigError",
           "Runtime", "Settings", "fetch_secret", "runtime", "set_runtime", "with_password"]


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
    def homes(self) -> dict[str, tuple[str | None, float]]:
        """Account → (home region, monotonic deadline): regions.home_of's cache
        for this warm container."""
        return {}

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
    def retention(self) -> RetentionStore:
        from .adapters.retention_store import RetentionStore

        return RetentionStore(self.dynamodb, self.settings.table)

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
