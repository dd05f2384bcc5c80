"""`make dev`: the whole backend on 127.0.0.1 in one process.

    python -m local.stack [--api-port 8000] [--moto-port 0] [--redis-port 0]
                          [--state-file .sealsync-stack.json]
                          [--data-dir .sealsync-data | --ephemeral]

  moto server   S3, DynamoDB, SQS: the bucket, table and commit queue (+DLQ)
                and the bucket's S3 -> SQS notification, as deployed
  Redis         a real redis-server when installed, else an embedded
                fakeredis server (announced loudly: it is not the real thing)
  API           the Chalice app from app.py on chalice's threaded local
                server (long polls hold a thread for up to 20 s each)
  event pump    SQS -> app.on_commit_queue, the handler Lambda runs
  sweeper       chalicelib.sweeper.sweep every 60 s, as the schedule does
  localstripe   a stateful fake Stripe server (billing), its signed webhooks
                sent to the API's /v1/billing/webhook
  scheduler     local/scheduler.py: the jobs of chalicelib.jobs.SCHEDULES,
                fired through the same handler EventBridge Scheduler invokes

S3 objects and DynamoDB items are kept in the data directory across restarts
(local/persist.py: restored on start, snapshotted at intervals and on stop);
--ephemeral keeps everything in memory only, as tests do.

The endpoints are printed and written as JSON to the state file, which
clients, tests and benchmarks read; "ready" is printed last, once all is
up. Ctrl-C or SIGTERM stops everything and removes the state file.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from local.moto import MotoProcess
from local.options import Options, configure_env, parse_args
from local.persist import DataDir
from local.pump import Pump
from local.regions import Attached
from local.services import FakeRedisServer, Periodic, RedisServer, start_redis

log = logging.getLogger("sealsync.stack")

HOST = "127.0.0.1"

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StackError(RuntimeError):
    """The stack could not start; the message says why."""


class Stack:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.moto: MotoProcess | Attached | None = None
        self.redis: RedisServer | FakeRedisServer | Attached | None = None
        self.api: Any = None
        self.api_thread: threading.Thread | None = None
        self.pump: Pump | None = None
        self.sweeper: Periodic | None = None
        self.stripe: Any = None  # localstripe (local/stripe.py)
        self.scheduler: Periodic | None = None
        self.ws: Any = None  # the WebSocket gateway (docs/PUSH.md)
        self.info: dict[str, Any] = {}
        self._wrote_state = False
        self.data = DataDir(opts.data_dir) if opts.data_dir is not None else None
        self.regions: list[Any] = []  # the other regions' processes (local/regions.py)
        self.replicator: Periodic | None = None

    # -- start ------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        self._claim_state_file()
        if self.data is not None:
            self.data.claim(os.getpid(), _pid_alive)
            self.data.load()  # refuse a snapshot we cannot read before touching anything
        from local import regions

        layout = regions.prepare(self.opts.regions, self.opts.api_port) \
            if self.opts.regions else {}
        if self.opts.attach_moto and self.opts.attach_redis:
            self.moto = regions.Attached(self.opts.attach_moto)
            self.redis = regions.Attached(self.opts.attach_redis)
            redis_kind = "attached"
        else:
            self.moto = MotoProcess(self.opts.moto_port or None, self.opts.data_dir,
                                    self.opts.snapshot_interval_s).start()
            redis_kind = self._start_redis()
        assert self.redis is not None and self.moto is not None
        env = configure_env(self.opts, self.moto.url, self.redis.url)
        if not self.opts.attach_moto:  # billing stays with the first region
            env.update(self._start_stripe())
        from local.websocket import LocalWebsocketGateway, local_push_apps

        self.ws = LocalWebsocketGateway(HOST)
        os.environ.update({**self.ws.env(), **local_push_apps(self.moto.url, self.opts.region)})

        from chalicelib.config import Runtime, Settings, set_runtime
        from chalicelib.sweeper import sweep
        from local.resources import create_all

        rt = Runtime(Settings.from_env())
        set_runtime(rt)
        rt.redis.ping()  # fail now, not on the first request
        if self.opts.presign_endpoint:
            _presign_via(rt, self.opts.presign_endpoint)
        queue_url = create_all(rt, env["SEALSYNC_QUEUE"])
        assert queue_url is not None
        regions.create_region_resources(rt)
        if self.data is not None:
            log.info("%s", self.data.restore(rt.s3, rt.dynamodb))
            self.moto.arm()  # only now may it snapshot: never a half-restored state

        import app as app_module  # only now: it reads the env at import time

        # Chalice logs the app's logger to stdout (CloudWatch in Lambda); here
        # stdout is for the endpoints and "ready", so every log goes to stderr.
        app_log = logging.getLogger(app_module.app.app_name)
        app_log.handlers.clear()
        app_log.propagate = True
        if rt.settings.bucket != app_module.BUCKET:
            raise StackError("app.py was imported before the stack set its environment")
        self._start_api(app_module.app, layout[self.opts.region]["port"] if layout
                        else self.opts.api_port)
        self.ws.start(app_module.ws_connect, app_module.ws_message, app_module.ws_disconnect)
        self.pump = Pump(rt._boto("sqs"), queue_url, app_module.on_commit_queue,
                         region=self.opts.region, workers=self.opts.pump_workers,
                         duplicate_rate=self.opts.duplicate_events,
                         max_delay_s=self.opts.delay_events_s,
                         handler_log=self.opts.handler_log,
                         counters=self._count_calls(rt)).start()
        self.sweeper = Periodic("sweeper", self.opts.sweep_interval_s,
                                lambda: self._sweep(sweep, rt)).start()
        self._start_scheduler(app_module)
        if layout:
            self.regions = regions.start_others(layout, self.moto.url, self.redis.url,
                                                self.opts.state_file.parent)
            self.replicator = Periodic("replicator", 5.0, lambda: regions.replicate_all(
                layout, self.moto.url)).start()
        redis_proc = getattr(self.redis, "proc", None)
        self.info = {
            "api": f"http://{HOST}:{self.api.server.server_address[1]}",
            "aws_endpoint": self.moto.url,
            "ws_url": self.ws.url,
            "ws_management": self.ws.management_url,
            "s3_endpoint": self.moto.url,
            "redis_url": self.redis.url,
            "redis": redis_kind,
            "redis_pid": redis_proc.pid if redis_proc is not None else None,
            "bucket": rt.settings.bucket,
            "table": rt.settings.table,
            "queue_url": queue_url,
            "region": self.opts.region,
            "regions": {r: {"api": v["url"], "bucket": v["bucket"], "table": v["table"],
                            "replica": v["replica"], "replica_bucket": v["replica_bucket"]}
                        for r, v in layout.items()},
            "data_dir": str(self.data.path) if self.data is not None else None,
            "pid": os.getpid(),
            "started_at": int(time.time()),
            "stripe": self.stripe.url if self.stripe else None,
            # for `python -m local.scheduler fire JOB` (no secret in here)
            "env": {k: v for k, v in env.items() if "SECRET" not in k},
        }
        self._write_state()
        return self.info

    def _claim_state_file(self) -> None:
        path = self.opts.state_file
        try:
            other = json.loads(path.read_text()).get("pid")
        except (OSError, ValueError, AttributeError):
            return
        if isinstance(other, int) and other != os.getpid() and _pid_alive(other):
            raise StackError(f"another stack (pid {other}) owns {path}; stop it or "
                             "pass --state-file")
        log.info("replacing stale state file %s", path)

    def _count_calls(self, rt: Any) -> Callable[[], dict[str, int]] | None:
        """With a handler log (benchmarks), each line also carries the
        stack's cumulative DynamoDB requests so far (local/aws_calls.py)."""
        if self.opts.handler_log is None:
            return None
        from local.aws_calls import CallCounter

        return CallCounter().attach(rt.dynamodb).totals

    def _start_stripe(self) -> dict[str, str]:
        """localstripe when installed (requirements-dev.txt); billing is off
        without it, announced."""
        from local.stripe import TEST_KEY, LocalStripe, localstripe_path

        if localstripe_path() is None:
            log.warning("localstripe is not installed: billing is off")
            return {}
        self.stripe = LocalStripe().start()
        env = {"SEALSYNC_STRIPE_KEY": TEST_KEY, "SEALSYNC_STRIPE_API_BASE": self.stripe.url,
               "SEALSYNC_STRIPE_WEBHOOK_SECRET": "whsec_" + os.urandom(16).hex()}
        os.environ.update(env)
        return env

    def _start_scheduler(self, app_module: Any) -> None:
        from chalicelib.jobs import SCHEDULES
        from local.scheduler import LocalScheduler

        if self.stripe is not None:  # its webhooks go to our API
            self.stripe.webhook(f"http://{HOST}:{self.api.server.server_address[1]}"
                                "/v1/billing/webhook",
                                os.environ["SEALSYNC_STRIPE_WEBHOOK_SECRET"])
        runner = LocalScheduler(SCHEDULES, lambda event: app_module.scheduled_job(event, None))
        self.scheduler = Periodic("scheduler", 30.0, runner.tick).start()

    def _start_redis(self) -> str:
        self.redis, kind = start_redis(self.opts.redis_port or None, self.opts.fake_redis)
        return kind

    def _start_api(self, app_obj: Any, port: int) -> None:
        from chalice.config import Config
        from chalice.local import create_local_server

        # ThreadedHTTPServer underneath: one thread per connection, so a
        # long poll never blocks other requests.
        config = Config.create(chalice_stage="dev", app_name="sealsync",
                               lambda_timeout=30, lambda_memory_size=512)
        try:
            self.api = create_local_server(app_obj, config, HOST, port)
        except OSError as exc:
            raise StackError(f"cannot serve the API on {HOST}:{port}: "
                             f"{exc.strerror}; pass --api-port 0 for a free port") from exc
        self.api_thread = threading.Thread(target=self.api.server.serve_forever,
                                           name="api", daemon=True)
        self.api_thread.start()

    @staticmethod
    def _sweep(sweep: Any, rt: Any) -> None:
        report = sweep(rt)
        if report.finished or report.expired or report.orphans_deleted or report.errors:
            log.info("sweep: %d finished, %d expired, %d orphans, %d errors",
                     len(report.finished), len(report.expired),
                     len(report.orphans_deleted), report.errors)

    def _write_state(self) -> None:
        path = self.opts.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.info, indent=2) + "\n")
        os.replace(tmp, path)  # readers never see a half-written file
        self._wrote_state = True

    # -- stop -------------------------------------------------------------
    def stop(self) -> None:
        """Stop in reverse order; each step runs even if an earlier one fails."""
        steps = [("state file", self._remove_state),
                 ("regions", lambda: [r.stop() for r in self.regions]),
                 ("replicator", self.replicator.stop if self.replicator else None),
                 ("api", self._stop_api),
                 ("websocket", self.ws.stop if self.ws else None),
                 ("sweeper", self.sweeper.stop if self.sweeper else None),
                 ("scheduler", self.scheduler.stop if self.scheduler else None),
                 ("localstripe", self.stripe.stop if self.stripe else None),
                 ("pump", self._stop_pump),
                 ("redis", self.redis.stop if self.redis else None),
                 ("moto", self.moto.stop if self.moto else None),
                 ("data dir", self._release_data)]
        for name, step in steps:
            if step is None:
                continue
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                log.warning("stopping %s failed: %s: %s", name, type(exc).__name__, exc)
        self.sweeper = self.pump = self.redis = self.moto = self.api = self.ws = None
        self.scheduler = self.stripe = None

    def _release_data(self) -> None:
        if self.data is not None:
            self.data.release(os.getpid())

    def _stop_pump(self) -> None:
        if self.pump is None:
            return
        self.pump.stop()
        st = self.pump.stats
        log.info("event pump: %d messages in %d batches, %d failed batches, "
                 "%d duplicates sent", st.messages, st.batches, st.failed_batches,
                 st.duplicates_sent)

    def _stop_api(self) -> None:
        if self.api is not None:
            self.api.shutdown()
            self.api.server.server_close()
        if self.api_thread is not None:
            self.api_thread.join(10)

    def _remove_state(self) -> None:
        if not self._wrote_state:
            return
        try:
            if json.loads(self.opts.state_file.read_text()).get("pid") == os.getpid():
                self.opts.state_file.unlink()
        except (OSError, ValueError):
            pass
        self._wrote_state = False


class _PresignVia:
    """The app's S3 client, except that presigned URLs name another endpoint
    (a proxy in front of moto; moto does not check signatures anyway)."""

    def __init__(self, s3: Any, presigner: Any) -> None:
        self._s3 = s3
        self.generate_presigned_url = presigner.generate_presigned_url

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def _presign_via(rt: Any, endpoint: str) -> None:
    import dataclasses

    from chalicelib.config import Runtime

    other = Runtime(dataclasses.replace(rt.settings, aws_endpoint=endpoint))
    rt.blobs.s3 = _PresignVia(rt.s3, other.s3)


def describe(info: dict[str, Any], state_file: Path) -> str:
    return "\n".join([
        "Sealsync local stack",
        f"  api           {info['api']}",
        f"  aws endpoint  {info['aws_endpoint']}   (moto: S3, DynamoDB, SQS)",
        f"  websocket     {info.get('ws_url')}   (push; docs/PUSH.md)",
        f"  redis         {info['redis_url']}   ({info['redis']})",
        f"  bucket        {info['bucket']}",
        f"  table         {info['table']}",
        f"  commit queue  {info['queue_url']}",
        f"  data          {info.get('data_dir') or 'in memory only (--ephemeral)'}",
        f"  state file    {state_file.resolve()}",
    ])


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv, __doc__)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if opts.verbose:  # not "sealsync" itself: app.py sets that one to INFO on import
        for name in ("sealsync.pump", "sealsync.stack", "sealsync.commit"):
            logging.getLogger(name).setLevel(logging.DEBUG)

    stop = threading.Event()
    parent = os.getppid()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    stack = Stack(opts)
    try:
        info = stack.start()
    except Exception as exc:
        log.error("the stack did not start: %s: %s", type(exc).__name__, exc)
        stack.stop()
        return 1
    print(describe(info, opts.state_file), flush=True)
    print("ready", flush=True)
    while not stop.wait(0.5):
        if opts.exit_with_parent and os.getppid() != parent:
            log.info("parent process %d is gone, stopping", parent)
            break
    stack.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
