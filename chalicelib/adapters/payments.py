"""Stripe, through its own SDK (`stripe`), imported here only: the commit
and API cold path never loads it (tests/deploy/test_config_secrets.py).

Locally and in tests the SDK talks to localstripe, a stateful fake Stripe
server (`SEALSYNC_STRIPE_API_BASE`). localstripe has no Prices API and no
finalize route, and makes invoices only for customers with a subscription;
so every customer is subscribed to one $0 monthly Plan and the usage is
billed as invoice items swept into an invoice created for that
subscription, then paid. docs/OPERATIONS.md says where production differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PLAN_ID = "sealsync-payg"


@dataclass(frozen=True)
class Paid:
    invoice_id: str
    status: str  # paid, failed, pending
    cents: int


class Payments:
    def __init__(self, api_key: str, api_base: str | None, webhook_secret: str) -> None:
        import stripe

        self.stripe = stripe
        bases = {"api": api_base} if api_base else {}
        self.client = stripe.StripeClient(api_key, base_addresses=bases,  # type: ignore[arg-type]
                                          max_network_retries=2)
        self.webhook_secret = webhook_secret

    def _plan(self) -> None:
        try:
            self.client.v1.plans.retrieve(PLAN_ID)
        except self.stripe.InvalidRequestError:
            self.client.v1.plans.create(params={
                "id": PLAN_ID, "amount": 0, "currency": "usd", "interval": "month",
                "product": {"name": "Sealsync, pay as you go"}})

    def create_customer(self, user_id: str, email: str | None) -> str:
        params: dict[str, Any] = {"metadata": {"account": user_id}}
        if email:
            params["email"] = email
        got = self.client.v1.customers.create(params=params,  # type: ignore[arg-type]
                                              options={"idempotency_key": f"cus-{user_id}"})
        return str(got.id)

    def attach(self, customer: str, payment_method: str) -> None:
        """Make `payment_method` the customer's default, and subscribe the
        customer to the $0 plan once (what invoices hang on)."""
        self.client.v1.payment_methods.attach(payment_method, params={"customer": customer})
        self.client.v1.customers.update(customer, params={
            "invoice_settings": {"default_payment_method": payment_method}})
        if not self.client.v1.subscriptions.list(params={"customer": customer}).data:
            self._plan()
            self.client.v1.subscriptions.create(params={"customer": customer,
                                                        "items": [{"plan": PLAN_ID}]})

    def _subscription(self, customer: str) -> str | None:
        subs = self.client.v1.subscriptions.list(params={"customer": customer}).data
        return str(subs[0].id) if subs else None

    def invoice(self, customer: str, lines: list[tuple[str, int]], key: str) -> str | None:
        """Invoice items for `lines` (description, cents) and one invoice
        over them; None if the customer has no subscription (no payment
        method yet). `key` makes each request idempotent at Stripe."""
        sub = self._subscription(customer)
        if sub is None:
            return None
        pending = [i for i in self.client.v1.invoice_items.list(
            params={"customer": customer}).data if not getattr(i, "invoice", None)]
        if not pending:  # an earlier run that crashed may have added them already
            for n, (what, cents) in enumerate(lines):
                self.client.v1.invoice_items.create(
                    params={"customer": customer, "amount": cents, "currency": "usd",
                            "description": what},
                    options={"idempotency_key": f"{key}-item-{n}"})
        got = self.client.v1.invoices.create(params={"customer": customer,
                                                     "subscription": sub},
                                             options={"idempotency_key": f"{key}-invoice"})
        return str(got.id)

    def pay(self, invoice_id: str) -> Paid:
        """Charge the default payment method: `paid`, `failed` (declined
        now: the invoice stays open) or `pending` (a debit still processing;
        the webhook `invoice.paid` or `invoice.payment_failed` decides)."""
        got = self.client.v1.invoices.retrieve(invoice_id)
        if got.status not in ("paid", "void", "uncollectible"):
            try:
                got = self.client.v1.invoices.pay(invoice_id)
            except self.stripe.CardError:
                got = self.client.v1.invoices.retrieve(invoice_id)
        status = str(got.status)
        if status == "open":
            intent = getattr(got, "payment_intent", None)
            pi = self.client.v1.payment_intents.retrieve(intent) if isinstance(intent, str) \
                else None
            status = "pending" if pi is not None and pi.status == "processing" else "failed"
        return Paid(str(got.id), status, int(got.total or 0))

    def open_invoices(self, customer: str) -> list[str]:
        got = self.client.v1.invoices.list(params={"customer": customer}).data
        return [str(i.id) for i in got if i.status == "open"]

    def event(self, payload: bytes, signature: str) -> Any:
        """The event as plain JSON, once stripe.Webhook.construct_event has
        verified its signature and age; raises ValueError or
        stripe.SignatureVerificationError on a bad one."""
        import json

        self.stripe.Webhook.construct_event(payload, signature, self.webhook_secret)
        return json.loads(payload)
