"""Billing: what the account routes, the payment webhooks and the period-end
invoice run do (docs/OPERATIONS.md, "Billing"; docs/ACCOUNT.md).

The standing rules are pure (core/billing.py); the store makes each move
conditional (adapters/billing_store.py); Stripe is reached only through
adapters/payments.py, imported when a billing handler first needs it.
Every effect happens once: an invoice per (account, period), a standing
move per decision, a mail per key, whatever fires twice.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from .account import usage_of
from .config import Runtime
from .core import billing as core
from .core import emails, metering
from .core.errors import BadRequest, NotFound, PaymentRequired, Unavailable
from .core.requests import only_fields
from .core.tokens import Claims

log = logging.getLogger("sealsync.billing")
CLAIM_LEASE_S = 900  # a claimed invoice not made in 15 min: that run died
_PM = re.compile(r"^pm_[A-Za-z0-9_]{1,96}$")


# -- sign-up, devices, the write gate ------------------------------------------------
def on_signup(rt: Runtime, user_id: str, email: str | None, now: int) -> None:
    s = core.new_standing(user_id, now, email, rt.settings.trial_days)
    rt.billing.create(s)
    rt.mailer.send_once(user_id, s.mail_to(), "welcome", emails.welcome(s.trial_ends))


def on_device(rt: Runtime, user_id: str, device_id: str, at: int, source_ip: str) -> None:
    """The security notice: when and from where, never which device."""
    s = rt.billing.get(user_id, consistent=False)
    if s is not None:
        rt.mailer.send_once(user_id, s.mail_to(), f"device#{device_id}",
                            emails.device_enrolled(at, source_ip))


def check_writable(rt: Runtime, user_id: str) -> None:
    """402 for a read-only account: before any upload, batch or delete."""
    s = rt.billing.get(user_id, consistent=False)
    if s is not None and not s.writable():
        raise PaymentRequired("this account is read-only until its invoice is paid "
                              "(downloads still work; nothing is deleted): add a payment "
                              "method or pay the open invoice")


# -- the account's routes ---------------------------------------------------------------
def _standing(rt: Runtime, user_id: str) -> core.Standing:
    s = rt.billing.get(user_id)
    if s is None:
        raise NotFound("this account has no billing record")
    return s


def status(rt: Runtime, who: Claims) -> dict[str, Any]:
    s = _standing(rt, who.user_id)
    return {"status": s.status, "trial_ends": s.trial_ends,
            "grace_ends": s.grace_ends(rt.settings.grace_days),
            "has_payment_method": s.has_payment_method, "email": s.email is not None,
            "writable": s.writable()}


def _customer(rt: Runtime, s: core.Standing) -> str:
    if s.customer:
        return s.customer
    customer = rt.payments.create_customer(s.user_id, s.email)
    rt.billing.link_customer(customer, s.user_id)
    return rt.billing.set_customer(s, customer).customer or customer


def set_payment_method(rt: Runtime, who: Claims, body: dict[str, Any]) -> dict[str, Any]:
    """POST /v1/account/billing/payment-method {payment_method: "pm_..."}:
    the id Stripe.js gave the client (card details never reach us)."""
    only_fields(body, {"payment_method"})
    pm = body.get("payment_method")
    if not isinstance(pm, str) or not _PM.match(pm):
        raise BadRequest("payment_method must be a payment method id (pm_...)")
    s = _standing(rt, who.user_id)
    with _provider_errors(rt):
        rt.payments.attach(_customer(rt, s), pm)
    rt.billing.set_payment_method(who.user_id)
    if s.status == core.READ_ONLY and s.unpaid_since is None:  # the trial ran out
        rt.billing.move(s, replace(s, status=core.ACTIVE, has_payment_method=True))
    if s.status in (core.PAST_DUE, core.READ_ONLY) and s.unpaid_since is not None:
        return pay_now(rt, who)
    return status(rt, who)


def pay_now(rt: Runtime, who: Claims) -> dict[str, Any]:
    """POST /v1/account/billing/pay: charge every open invoice now."""
    s = _standing(rt, who.user_id)
    if s.customer:
        with _provider_errors(rt):
            results = [rt.payments.pay(i) for i in rt.payments.open_invoices(s.customer)]
        if all(r.status == "paid" for r in results):
            mark_paid(rt, who.user_id)
    return status(rt, who)


@contextmanager
def _provider_errors(rt: Runtime) -> Iterator[None]:
    """Stripe's refusals become a 400 the client can act on; Stripe being
    unreachable or failing becomes a 503 to retry (never a 500)."""
    stripe = rt.payments.stripe
    try:
        yield
    except stripe.CardError as exc:
        raise BadRequest(f"the payment method was refused: "
                         f"{exc.user_message or 'declined'}") from None
    except stripe.InvalidRequestError:
        raise BadRequest("no such payment method, or it cannot be used: create it with "
                         "Stripe.js and send its pm_ id") from None
    except stripe.StripeError as exc:
        raise Unavailable(f"the payment provider failed ({type(exc).__name__}); "
                          "try again") from None


# -- standing moves (routes, webhooks and jobs share them) ---------------------------
def mark_paid(rt: Runtime, user_id: str) -> bool:
    s = rt.billing.get(user_id)
    if s is None or (s.status == core.ACTIVE and s.unpaid_since is None):
        return False
    return rt.billing.move(s, replace(s, status=core.ACTIVE, unpaid_since=None,
                                      has_payment_method=s.has_payment_method))


def mark_unpaid(rt: Runtime, user_id: str, invoice_id: str, cents: int, now: int) -> bool:
    """A failed charge starts the grace period (once: a later failure of the
    same debt does not extend it) and says so by mail, once per invoice."""
    s = rt.billing.get(user_id)
    if s is None:
        return False
    moved = False
    if s.status in (core.ACTIVE, core.TRIAL):
        moved = rt.billing.move(s, replace(s, status=core.PAST_DUE, unpaid_since=now))
        s = rt.billing.get(user_id) or s
    grace = s.grace_ends(rt.settings.grace_days) or now + rt.settings.grace_days * core.DAY
    rt.mailer.send_once(user_id, s.mail_to(), f"failed#{invoice_id}",
                        emails.payment_failed(cents, grace))
    return moved


# -- the period-end invoice run ------------------------------------------------------------
def invoice_account(rt: Runtime, s: core.Standing, period: metering.Period,
                    now: int) -> str:
    """Invoice one account for a finished period; returns what happened."""
    key = core.period_key(period.start)
    if s.status == core.TRIAL or not s.customer or not s.has_payment_method:
        return "not billed (trial or no payment method)"
    done = rt.billing.invoice(s.user_id, key)
    if done is not None and (done.get("invoice") or done["status"] == "nothing"
                             or now - int(done["claimed"]) < CLAIM_LEASE_S):
        return "already invoiced"
    lines = metering.charges(usage_of(rt, s.user_id, period, period.end), rt.settings.prices)
    cents = sum(c.cents for c in lines)
    if done is None and not rt.billing.claim_invoice(s.user_id, key, cents, now):
        return "already invoiced"
    if cents <= 0:
        rt.billing.record_invoice(s.user_id, key, "", "nothing")
        return "nothing to bill"
    invoice_id = rt.payments.invoice(
        s.customer, [(f"{c.description}: {c.quantity:.6g}", c.cents) for c in lines],
        key=f"{s.user_id}-{key}")
    if invoice_id is None:
        return "no subscription"
    rt.billing.record_invoice(s.user_id, key, invoice_id, "created")
    paid = rt.payments.pay(invoice_id)
    rt.billing.record_invoice(s.user_id, key, invoice_id, paid.status)
    if paid.status == "paid":
        rt.mailer.send_once(s.user_id, s.mail_to(), f"invoice#{key}",
                            emails.invoice(paid.cents, period.start, period.end, True))
        return "paid"
    if paid.status == "pending":
        return "payment pending"  # the provider's webhook decides
    mark_unpaid(rt, s.user_id, invoice_id, paid.cents, now)
    return "payment failed"


def invoice_run(rt: Runtime, now: int) -> dict[str, int]:
    """Invoice every account for the month before the one holding `now`."""
    period = metering.month_of(metering.month_of(now).start - 1)
    report: dict[str, int] = {}
    for s in rt.billing.all():
        try:
            what = invoice_account(rt, s, period, now)
        except Exception as exc:  # noqa: BLE001 - one account never stops the run
            log.warning("invoice failed for one account: %s", type(exc).__name__)
            what = "error"
        report[what] = report.get(what, 0) + 1
    return report


# -- webhooks -----------------------------------------------------------------------------
PAID_EVENTS = ("invoice.paid", "invoice.payment_succeeded")  # localstripe sends the second
MAX_WEBHOOK_BYTES = 256 * 1024


def webhook(rt: Runtime, payload: bytes, signature: str | None) -> dict[str, Any]:
    """POST /v1/billing/webhook: a signature-verified Stripe event, acted on
    once (effects are idempotent too, so a race of two deliveries is safe)."""
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise BadRequest("webhook body too large")
    if not signature or len(signature) > 2048:
        raise BadRequest("missing Stripe-Signature header")
    try:
        event = rt.payments.event(payload, signature)
    except (ValueError, rt.payments.stripe.SignatureVerificationError):
        raise BadRequest("webhook signature or body is not valid") from None
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    event_id = event.get("id") if isinstance(event, dict) else None
    if not isinstance(obj, dict) or not isinstance(event_id, str) or not 0 < len(event_id) < 256:
        raise BadRequest("not a Stripe event")
    if rt.billing.seen(f"WH#{event_id}", "WH"):
        return {"received": True, "duplicate": True}
    customer = obj.get("customer")
    user = rt.billing.user_of(customer) if isinstance(customer, str) and customer else None
    kind = event.get("type")
    if user is not None and kind in PAID_EVENTS:
        mark_paid(rt, user)
    elif user is not None and kind == "invoice.payment_failed":
        due = obj.get("amount_due")
        mark_unpaid(rt, user, str(obj.get("id"))[:256],
                    due if isinstance(due, int) and due >= 0 else 0, int(time.time()))
    rt.billing.first_time(f"WH#{event_id}", "WH", int(time.time()), ttl_s=90 * core.DAY)
    return {"received": True, "duplicate": False}


# -- mail notices (SES -> SNS) ---------------------------------------------------------------
def on_mail_notice(rt: Runtime, message: str) -> int:
    """An SES bounce or complaint notification: stop mailing those
    addresses. Returns how many were suppressed; anything else is ignored."""
    import json

    try:
        note = json.loads(message)
    except (ValueError, TypeError, RecursionError):
        return 0
    if not isinstance(note, dict):
        return 0
    kind = note.get("notificationType") or note.get("eventType")
    section = {"Bounce": ("bounce", "bouncedRecipients"),
               "Complaint": ("complaint", "complainedRecipients")}.get(str(kind))
    if section is None:
        return 0
    body = note.get(section[0])
    people = body.get(section[1]) if isinstance(body, dict) else None
    count = 0
    for person in people if isinstance(people, list) else []:
        address = person.get("emailAddress") if isinstance(person, dict) else None
        if isinstance(address, str) and 3 <= len(address) <= core.MAX_EMAIL:
            rt.billing.suppress(address, str(kind).lower(), int(time.time()))
            count += 1
    return count
