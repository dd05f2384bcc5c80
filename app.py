"""Sealsync's Chalice app: routes and event handlers only.

Each handler translates HTTP or an event into one call into chalicelib.
Authentication is the `bearer` authorizer; errors map to responses in
`endpoint`, the one place that knows HTTP status codes.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chalice.app import AuthResponse, Chalice, Rate, Request, Response

from chalicelib import api, files, limits, regions, single
from chalicelib.config import Runtime, runtime
from chalicelib.core.errors import SealsyncError, Unauthorized, Unavailable, WrongRegion
from chalicelib.core.requests import parse_json
from chalicelib.core.tokens import Claims

app = Chalice(app_name="sealsync")
app.log.setLevel(logging.INFO)
logging.getLogger("sealsync").setLevel(logging.INFO)

BUCKET = os.environ.get("SEALSYNC_BUCKET", "sealsync-data")
QUEUE = os.environ.get("SEALSYNC_QUEUE", "sealsync-commits")
JSON = ["application/json"]


@app.authorizer(ttl_seconds=60)
def bearer(auth_request: Any) -> AuthResponse:
    """Every route but sign-up and the OpenAPI document needs a valid token.

    A bad token is passed on marked `denied` and `endpoint` answers it with a
    JSON 401 (API Gateway's own deny is a bare 403 that does not tell the
    client to get a new token); no view runs without a valid token."""
    try:
        who = api.caller(runtime(), auth_request.token)
    except SealsyncError as exc:
        home = {"home": exc.url, "region": exc.region} if isinstance(exc, WrongRegion) else {}
        return AuthResponse(routes=["*"], principal_id="anonymous",
                            context={"denied": exc.message, "code": exc.code, **home})
    return AuthResponse(routes=["*"], principal_id=who.user_id,
                        context={"user_id": who.user_id, "device_id": who.device_id,
                                 "expires_at": str(who.expires_at)})


def _request() -> Request:
    request = app.current_request
    assert request is not None, "only called while serving a request"
    return request


def _claims() -> Claims:
    """Who is calling, as the `bearer` authorizer established."""
    ctx = _request().context.get("authorizer") or {}
    if not ctx.get("user_id"):
        if ctx.get("home"):  # the account lives in another region (421)
            raise WrongRegion(ctx.get("region") or "?", ctx["home"])
        if ctx.get("code") == Unavailable.code:  # e.g. the directory: retry, not log in
            raise Unavailable(ctx.get("denied") or "try again")
        raise Unauthorized(ctx.get("denied") or "a bearer token is required")
    # API Gateway caches the authorizer's answer per token for its TTL, so
    # expiry is checked again here: an expired token never outlives itself.
    expires_at = int(ctx.get("expires_at") or 0)
    if expires_at <= time.time():
        raise Unauthorized("missing, malformed, forged or expired bearer token")
    return Claims(ctx["user_id"], ctx["device_id"], expires_at)


def _body(batch: bool = False) -> dict[str, Any]:
    limits = runtime().settings.limits
    if batch:  # a batch may carry 1,000 entries: its own, larger bound
        limits = replace(limits, max_body_bytes=limits.max_batch_body_bytes)
    return parse_json(_request().raw_body, limits)


def _query() -> dict[str, str] | None:
    params = _request().query_params
    return None if params is None else dict(params)


_serving = threading.local()


def _rt() -> Runtime:
    """The Runtime serving this request's account: this region's, or the
    read-only replica while its home is down (chalicelib/regions.py)."""
    rt: Runtime = getattr(_serving, "rt", None) or runtime()
    return rt


def endpoint(path: str, method: str = "GET", public: bool = False,
             status: int = 200, write: bool | None = None) -> Callable[[Callable[..., Any]], Any]:
    """Register a route whose SealsyncErrors become 4xx JSON responses.
    `write` (default: any method but GET) routes are refused while the
    account's home region is down."""
    refuse_when_down = method != "GET" if write is None else write

    def register(view: Callable[..., Any]) -> Any:
        @functools.wraps(view)
        def handle(**params: str) -> Response:
            _serving.rt = None
            try:
                if not public:
                    who = _claims()  # deny by default, before the view runs
                    _serving.rt = regions.serving(runtime(), who.user_id, refuse_when_down)
                return Response(view(**params), status_code=status)
            except SealsyncError as exc:
                return Response(exc.to_body(), status_code=exc.status, headers=dict(exc.headers()))
        return app.route(path, methods=[method], content_types=JSON,
                         authorizer=None if public else bearer)(handle)
    return register


@endpoint("/v1/openapi.json", public=True)
def openapi() -> dict[str, Any]:
    with open(os.path.join(os.path.dirname(api.__file__), "openapi.json")) as f:
        document: dict[str, Any] = json.load(f)
    return document


def _limit(route: str) -> None:
    """The per-source-IP abuse limit of a public route (chalicelib/limits.py)."""
    identity = _request().context.get("identity") or {}
    limits.charge_ip(runtime(), route, identity.get("sourceIp"))


@endpoint("/v1/accounts", "POST", public=True, status=201)
def create_account() -> dict[str, Any]:
    _limit("signup")
    return api.create_account(runtime(), _body())


@endpoint("/v1/accounts/{user_id}/kdf", public=True)
def account_kdf(user_id: str) -> dict[str, Any]:
    return api.account_kdf(runtime(), user_id)


@endpoint("/v1/devices", "POST", public=True, status=201)
def add_device() -> dict[str, Any]:
    _limit("devices")
    identity = _request().context.get("identity") or {}
    return api.add_device(runtime(), _body(), str(identity.get("sourceIp") or "an unknown address"))


@endpoint("/v1/devices")
def list_devices() -> dict[str, Any]:
    return api.list_devices(_rt(), _claims())


@endpoint("/v1/devices/{device_id}", "DELETE")
def revoke_device(device_id: str) -> dict[str, Any]:
    return api.revoke_device(_rt(), _claims(), device_id, _query())


@endpoint("/v1/tokens", "POST", public=True, status=201)
def new_token() -> dict[str, Any]:
    _limit("tokens")
    return api.new_token(runtime(), _body())


@endpoint("/v1/uploads", "POST", status=201)
def create_upload() -> dict[str, Any]:
    return single.create_upload(_rt(), _claims(), _body())


@endpoint("/v1/uploads/{upload_id}")
def upload_status(upload_id: str) -> dict[str, Any]:
    return single.upload_status(_rt(), _claims(), upload_id, _query())


@endpoint("/v1/batches", "POST", status=201)
def create_batch() -> dict[str, Any]:
    return api.create_batch(_rt(), _claims(), _body(batch=True))


@endpoint("/v1/batches/{batch_id}")
def batch_status(batch_id: str) -> dict[str, Any]:
    return api.batch_status(_rt(), _claims(), batch_id, _query())


@endpoint("/v1/changes")
def changes() -> dict[str, Any]:
    return api.changes(_rt(), _claims(), _query())


@endpoint("/v1/chunks/missing", "POST", write=False)
def missing_chunks() -> dict[str, Any]:
    return api.missing_chunks(_rt(), _claims(), _body(batch=True))


@endpoint("/v1/files/{file_id}")
def get_file(file_id: str) -> dict[str, Any]:
    return files.get_file(_rt(), _claims(), file_id, _query())


@endpoint("/v1/files/{file_id}", "DELETE", status=202)
def delete_file(file_id: str) -> dict[str, Any]:
    return single.delete_file(_rt(), _claims(), file_id, _query())


@endpoint("/v1/files/{file_id}/revisions")
def file_revisions(file_id: str) -> dict[str, Any]:
    return files.file_revisions(_rt(), _claims(), file_id, _query())


@endpoint("/v1/account/usage")
def account_usage() -> dict[str, Any]:
    from chalicelib import account

    return account.usage(_rt(), _claims(), _query())


@endpoint("/v1/account/billing")
def account_billing() -> dict[str, Any]:
    from chalicelib import billing

    return billing.status(_rt(), _claims())


@endpoint("/v1/account/billing/payment-method", "POST")
def account_payment_method() -> dict[str, Any]:
    from chalicelib import billing

    return billing.set_payment_method(_rt(), _claims(), _body())


@endpoint("/v1/account/billing/pay", "POST")
def account_pay() -> dict[str, Any]:
    from chalicelib import billing

    return billing.pay_now(_rt(), _claims())


@endpoint("/v1/billing/webhook", "POST", public=True)
def billing_webhook() -> dict[str, Any]:
    """Stripe's events: the raw body, as signed (never re-serialized)."""
    from chalicelib import billing

    raw = _request().raw_body or b""
    return billing.webhook(runtime(), raw.encode() if isinstance(raw, str) else raw,
                           _request().headers.get("stripe-signature"))


@app.lambda_function(name="jobs")
def scheduled_job(event: Any, context: Any) -> dict[str, Any]:
    """EventBridge Scheduler's target: `{"job": NAME}` (chalicelib/jobs.py)."""
    from chalicelib.jobs import run_job

    return run_job(runtime(), event, int(time.time()))


@app.lambda_function(name="mail_notices")
def mail_notices(event: Any, context: Any) -> dict[str, int]:
    """SES bounce and complaint notifications through SNS: stop mailing them."""
    from chalicelib.billing import on_mail_notice

    records = event.get("Records") if isinstance(event, dict) else None
    count = 0
    for record in records if isinstance(records, list) else []:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if isinstance(sns, dict) and isinstance(sns.get("Message"), str):
            count += on_mail_notice(runtime(), sns["Message"])
    return {"suppressed": count}


# -- the commit handler, wired two ways onto one pipeline --------------------
def _commit_s3_object(event: Any) -> None:
    """Direct S3 notification: tests and `chalice deploy` only."""
    from chalicelib.commit import commit_keys

    commit_keys(runtime(), [event.key])


# `make package` sets SEALSYNC_COMMIT_TRIGGER=sqs: the deployed app has one
# path, S3 -> SQS -> on_commit_queue (SAM cannot package on_s3_event at all).
if os.environ.get("SEALSYNC_COMMIT_TRIGGER", "both") != "sqs":
    on_staging_object = app.on_s3_event(
        bucket=BUCKET, prefix="staging/", events=["s3:ObjectCreated:*"])(_commit_s3_object)


@app.on_sqs_message(queue=QUEUE, batch_size=10)
def on_commit_queue(event: Any) -> dict[str, Any]:
    """S3 -> SQS -> here: retries and a dead-letter queue. Only the messages
    that failed are redelivered (the event source mapping must enable
    ReportBatchItemFailures; deploy/ templates do, a test checks it)."""
    from chalicelib.commit import failed_messages

    failed = failed_messages(runtime(), ((r.to_dict()["messageId"], r.body) for r in event))
    return {"batchItemFailures": [{"itemIdentifier": m} for m in failed]}


@app.schedule(Rate(5, unit=Rate.MINUTES))
def sweep_stragglers(event: Any) -> None:
    from chalicelib.sweeper import sweep

    report = sweep(runtime())
    app.log.info("sweep: %d finished, %d expired, %d orphans, %d errors",
                 len(report.finished), len(report.expired),
                 len(report.orphans_deleted), report.errors)


# -- pairing a new device by a short code (docs/SECURITY.md) ----------------
@endpoint("/v1/pairings", "POST", status=201)
def pairing_create() -> dict[str, Any]:
    from chalicelib import pairing

    return pairing.create(_rt(), _claims(), _body())


@endpoint("/v1/pairings/{pairing_id}")
def pairing_status(pairing_id: str) -> dict[str, Any]:
    from chalicelib import pairing

    return pairing.status(_rt(), _claims(), pairing_id)


@endpoint("/v1/pairings/{pairing_id}/box", "POST", status=201)
def pairing_put_box(pairing_id: str) -> dict[str, Any]:
    from chalicelib import pairing

    return pairing.put_box(_rt(), _claims(), pairing_id, _body())


@endpoint("/v1/pairings/{pairing_id}/join", "POST", public=True)
def pairing_join(pairing_id: str) -> dict[str, Any]:
    from chalicelib import pairing

    _limit("pairing")
    return pairing.join(runtime(), pairing_id, _body())


@endpoint("/v1/pairings/{pairing_id}/box", public=True)
def pairing_take_box(pairing_id: str) -> dict[str, Any]:
    from chalicelib import pairing

    return pairing.take_box(runtime(), pairing_id)


# -- push: WebSocket handlers and mobile registrations (docs/PUSH.md) --------
app.experimental_feature_flags.update(["WEBSOCKETS"])


@app.on_ws_connect()
def ws_connect(event: Any) -> dict[str, Any]:
    """A valid bearer token registers the connection; else it is refused."""
    from chalicelib import push

    return push.ws_connect(runtime(), event.to_dict())


@app.on_ws_message()
def ws_message(event: Any) -> dict[str, Any]:
    from chalicelib import push

    return push.ws_message(runtime(), event.to_dict())


@app.on_ws_disconnect()
def ws_disconnect(event: Any) -> dict[str, Any]:
    from chalicelib import push

    return push.ws_disconnect(runtime(), event.to_dict())


@endpoint("/v1/push")
def push_info() -> dict[str, Any]:
    from chalicelib import push

    return push.push_info(_rt())


@endpoint("/v1/push/tickets", "POST", status=201)
def push_ticket() -> dict[str, Any]:
    from chalicelib import push

    who = _claims()
    return push.connect_ticket(_rt(), who.user_id, who.device_id)


@endpoint("/v1/push/registrations", "POST", status=201)
def push_register() -> dict[str, Any]:
    from chalicelib import push

    who = _claims()
    return push.register_mobile(_rt(), who.user_id, who.device_id, _body())


@endpoint("/v1/push/registrations", "DELETE")
def push_unregister() -> dict[str, Any]:
    from chalicelib import push

    who = _claims()
    return push.unregister_mobile(_rt(), who.user_id, who.device_id)
