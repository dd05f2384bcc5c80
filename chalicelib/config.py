"""Settings read once from the environment, and clients built once per
container: never a Redis or AWS client per request (cold start and the
store's CPU both pay for that).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .core.requests import Limits

if TYPE_CHECKING:  # heavy imports stay out of the cold start path
    import redis as redis_lib

    from .adapters.accounts import Accounts
    from .adapters.blobs import Blobs
    from .adapters.connections import Registry
    from .adapters.meta import Meta
    from .adapters.mobile import Mobile
    from .adapters.redis_lock import Locks
    from .adapters.wakeups import Waker
    from .push import Notifier, WsSender


class ConfigError(RuntimeError):
    """The deployment is missing a setting; the message names it."""


REQUIRED = ("SEALSYNC_BUCKET", "SEALSYNC_TABLE", "SEALSYNC_REDIS_URL",
            "SEALSYNC_TOKEN_SECRET")
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
    limits: Limits = field(default_factory=Limits)
    ws_endpoint: str | None = None  # management API override (the local stack)
    ws_url: str | None = None  # the public wss:// URL clients connect to
    push_apps: dict[str, str] = field(default_factory=dict)  # platform -> SNS app ARN

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        missing = [name for name in REQUIRED if not env.get(name)]
        if missing:
            raise ConfigError("missing configuration: " + ", ".join(missing)
                              + " (see .chalice/config.json and docs)")
        secret = env["SEALSYNC_TOKEN_SECRET"].encode()
        if len(secret) < 32:
            raise ConfigError("SEALSYNC_TOKEN_SECRET must be at least 32 characters")

        def num(name: str, default: float) -> Any:
            raw = env.get(name)
            try:
                return type(default)(raw) if raw else default
            except ValueError as exc:
                raise ConfigError(f"{name} must be a number, got {raw!r}") from exc

        return cls(
            bucket=env["SEALSYNC_BUCKET"],
            table=env["SEALSYNC_TABLE"],
            redis_url=env["SEALSYNC_REDIS_URL"],
            token_secret=secret,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_endpoint=env.get("SEALSYNC_AWS_ENDPOINT") or None,
            token_ttl_s=num("SEALSYNC_TOKEN_TTL_S", 12 * 3600),
            upload_ttl_s=num("SEALSYNC_UPLOAD_TTL_S", 3600),
            lock_ttl_ms=num("SEALSYNC_LOCK_TTL_MS", 10_000),
            lock_wait_s=num("SEALSYNC_LOCK_WAIT_S", 5.0),
            sweep_after_s=num("SEALSYNC_SWEEP_AFTER_S", 3600 + 300),
            ws_endpoint=env.get("SEALSYNC_WS_ENDPOINT") or None,
            ws_url=env.get("SEALSYNC_WS_URL") or None,
            push_apps={p: env[v] for p, v in PUSH_APP_VARS.items() if env.get(v)},
        )


class Runtime:
    """Everything a handler needs, built lazily and then reused."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _boto(self, service: str) -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(retries={"max_attempts": 3, "mode": "standard"},
                     max_pool_connections=32, s3={"addressing_style": "path"})
        if service == "s3":  # presigned URLs must be SigV4 (signed headers)
            cfg = cfg.merge(Config(signature_version="s3v4"))
        session: Any = boto3.session.Session()
        return session.client(service, region_name=self.settings.region,
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
    def meta(self) -> Meta:
        from .adapters.meta import Meta

        return Meta(self.dynamodb, self.settings.table)

    @cached_property
    def accounts(self) -> Accounts:
        from .adapters.accounts import Accounts

        return Accounts(self.dynamodb, self.settings.table)

    @cached_property
    def locks(self) -> Locks:
        from .adapters.redis_lock import Locks

        return Locks(self.redis, self.settings.lock_ttl_ms, self.settings.lock_wait_s)

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
            _runtime = Runtime(Settings.from_env())
        return _runtime


def set_runtime(rt: Runtime | None) -> None:
    """Install a Runtime (tests, the local stack) or clear it."""
    global _runtime
    with _lock:
        _runtime = rt
