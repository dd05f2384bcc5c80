"""Billing test support: localstripe (the real fake Stripe server) on a free
port, a Runtime with billing on, localstripe's signed webhooks caught on a
loopback HTTP server and handed to the app, and moto's SES outbox."""
from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from chalicelib.core.metering import Prices
from local.services import free_port
from local.stripe import TEST_KEY, LocalStripe
from tests.harness import Device, Harness

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"  # attaches, then every charge is declined
DEBIT_FAILS = "DE62370400440532013001"  # a SEPA debit that fails after processing
# A price list that makes a test's few requests and kilobytes cost cents: 10 cents a
# PUT URL, 1 cent a KB-month.
TEST_PRICES = Prices(storage_gb_month=1024**3 / 1000, per_1000_puts=10_000.0)


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    server = LocalStripe().start()
    try:
        yield server
    finally:
        server.stop()


class WebhookCatcher:
    """What localstripe POSTs (body and Stripe-Signature), held until the
    test delivers it to the app: once, twice, or late."""

    def __init__(self) -> None:
        self.caught: list[tuple[bytes, str]] = []
        self.arrived = threading.Condition()
        catcher = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with catcher.arrived:
                    catcher.caught.append((body, self.headers.get("stripe-signature") or ""))
                    catcher.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait_for(self, event_type: str, timeout_s: float = 15.0) -> tuple[bytes, str]:
        import json

        with self.arrived:
            found = self.arrived.wait_for(lambda: any(
                json.loads(b)["type"] == event_type for b, _ in self.caught), timeout_s)
            assert found, f"no {event_type} webhook within {timeout_s}s"
            return next((b, s) for b, s in self.caught if json.loads(b)["type"] == event_type)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Billed:
    h: Harness
    stripe: LocalStripe
    hooks: WebhookCatcher
    secret: str

    def client(self) -> Any:
        import stripe

        return stripe.StripeClient(TEST_KEY, base_addresses={"api": self.stripe.url})

    def payment_method(self, card: str) -> str:
        """A card number, or an IBAN for a SEPA debit (its failure is
        reported later, by the invoice.payment_failed webhook)."""
        params: dict[str, Any] = (
            {"type": "sepa_debit", "sepa_debit": {"iban": card},
             "billing_details": {"name": "Test", "email": "test@example.com"}}
            if card.startswith("DE") else
            {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2040,
                                      "cvc": "123"}})
        pm = self.client().v1.payment_methods.create(params=params)
        return str(pm.id)

    def signup(self, email: str | None) -> Device:
        from local.apiclient import public_key

        auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
        body: dict[str, Any] = {"auth_key": auth_key, "kdf": "test",
                                "signing_key": public_key(account_seed)}
        if email is not None:
            body["email"] = email
        r = self.h.post("/v1/accounts", body)
        assert r.status_code == 201, r.body
        return self.h.add_device(r.json_body["user_id"], auth_key, account_seed)

    def deliver(self, body: bytes, signature: str) -> Any:
        return self.h.http.http.post("/v1/billing/webhook", body=body, headers={
            "content-type": "application/json", "stripe-signature": signature})


def enable_billing(h: Harness, localstripe: LocalStripe) -> str:
    """Turn billing on for the harness's Runtime; returns the webhook secret."""
    from chalicelib.adapters.payments import Payments

    localstripe.flush()
    secret = "whsec_" + secrets.token_hex(16)
    rt = h.rt
    rt.settings = replace(rt.settings, stripe_key=TEST_KEY, stripe_api_base=localstripe.url,
                          stripe_webhook_secret=secret, prices=TEST_PRICES)
    rt.__dict__["payments"] = Payments(TEST_KEY, localstripe.url, secret)
    return secret


def signed(body: bytes, secret: str, at: int | None = None) -> str:
    """A Stripe-Signature header, by Stripe's documented scheme (HMAC-SHA256
    of "t.body"), as localstripe and Stripe make it."""
    import hashlib
    import hmac
    import time

    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def drive_billing_routes(h: Harness, http: Any, dev: Device, forged: Device, file_id: str,
                         secret: str, localstripe: LocalStripe) -> None:
    """Every status the billing routes and the 402s document (test_openapi)."""
    import json

    import stripe

    from chalicelib.core import billing as core

    rt = h.rt
    configured, payments = rt.settings, rt.__dict__.pop("payments")
    rt.settings = replace(configured, stripe_key=None)  # billing off: 503, nothing else
    assert h.post("/v1/account/billing/payment-method", {"payment_method": "pm_x"},
                  dev).status_code == 503
    assert h.post("/v1/billing/webhook", b"{}", None).status_code in (400, 503)
    http.post("/v1/billing/webhook", headers={"content-type": "application/json",
                                              "stripe-signature": "t=1,v1=0"}, body=b"{}")
    rt.settings, rt.__dict__["payments"] = configured, payments
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe.url})
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": CARD_OK, "exp_month": 12, "exp_year": 2040, "cvc": "123"}})
    assert h.get("/v1/account/billing", dev).status_code == 200
    assert h.get("/v1/account/billing", forged).status_code == 401
    path = "/v1/account/billing/payment-method"
    assert h.post(path, {"payment_method": pm.id}, dev).status_code == 200
    assert h.post(path, {"payment_method": "card 4242"}, dev).status_code == 400
    assert h.post(path, {"payment_method": pm.id}, forged).status_code == 401
    assert h.post(path, "x" * (rt.settings.limits.max_body_bytes + 1), dev).status_code == 413
    assert h.post("/v1/account/billing/pay", {}, dev).status_code == 200
    assert h.post("/v1/account/billing/pay", {}, forged).status_code == 401
    other = h.signup()  # an account from before billing: no standing
    rt.dynamodb.delete_item(TableName=rt.settings.table,
                            Key={"pk": {"S": f"BILLING#{other.user_id[0]}"},
                                 "sk": {"S": other.user_id}})
    assert h.get("/v1/account/billing", other).status_code == 404
    assert h.post(path, {"payment_method": pm.id}, other).status_code == 404
    assert h.post("/v1/account/billing/pay", {}, other).status_code == 404
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}).encode()
    for sig in (signed(body, secret), "t=1,v1=00"):
        http.post("/v1/billing/webhook", headers={"content-type": "application/json",
                                                  "stripe-signature": sig}, body=body)
    s = rt.billing.get(dev.user_id)
    assert s is not None and rt.billing.move(s, replace(s, status=core.READ_ONLY))
    assert h.post("/v1/uploads", {"file_id": file_id, "base_revision": 9, "manifest_size": 8,
                                  "chunks": []}, dev).status_code == 402
    assert h.post("/v1/batches", {"entries": [{"file_id": file_id, "base_revision": 9,
                                               "manifest_size": 8, "chunks": []}]},
                  dev).status_code == 402
    assert h.delete(f"/v1/files/{file_id}?base_revision=9", dev).status_code == 402
    s = rt.billing.get(dev.user_id)
    assert s is not None and rt.billing.move(s, replace(s, status=core.ACTIVE))
    assert h.post(path, {"payment_method": "pm_NoSuchMethod"}, dev).status_code == 400
    rt.settings = replace(configured, stripe_key=None)
    rt.__dict__.pop("payments")
    assert h.post("/v1/account/billing/pay", {}, dev).status_code == 503  # has a customer
    rt.settings, rt.__dict__["payments"] = configured, payments


@pytest.fixture
def billed(fast: Harness, localstripe: LocalStripe) -> Iterator[Billed]:
    secret = enable_billing(fast, localstripe)
    hooks = WebhookCatcher()
    localstripe.webhook(hooks.url, secret)
    try:
        yield Billed(fast, localstripe, hooks, secret)
    finally:
        hooks.close()


def outbox() -> list[dict[str, Any]]:
    """Every message moto's SES accepted: {to, subject, body}."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    return [{"to": list(m.destinations["ToAddresses"]), "subject": m.subject,
             "body": m.body} for m in sent]
