"""Billing, pure: an account's standing and the rules that move it.

  trial      new account, writes allowed until `trial_ends`; without a
             payment method by then it becomes read_only (trial expiry job)
  active     a payment method on file, every invoice paid
  past_due   an invoice failed at `unpaid_since`; writes still allowed
             for the grace period (the payment-failed email says until when)
  read_only  unpaid past the grace period (grace job), or the trial ended
             without a payment method: uploads, batches and deletes get 402,
             downloads work, nothing is deleted

Paying (a webhook `invoice.paid`, or the pay route's own answer) makes the
account active again. Every transition is a conditional update in the
store (adapters/billing_store.py) from the state read here, so an event,
webhook or schedule delivered twice moves it once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TRIAL = "trial"
ACTIVE = "active"
PAST_DUE = "past_due"
READ_ONLY = "read_only"
STATUSES = (TRIAL, ACTIVE, PAST_DUE, READ_ONLY)
DAY = 86400
TRIAL_DAYS = 30
GRACE_DAYS = 14
MAX_EMAIL = 254  # RFC 5321's path limit
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


@dataclass(frozen=True)
class Standing:
    """What the store keeps per account for billing (no file data)."""

    user_id: str
    status: str
    created: int
    trial_ends: int
    customer: str | None = None  # the payment provider's customer id
    has_payment_method: bool = False
    unpaid_since: int | None = None
    email: str | None = None
    suppressed: bool = False  # a bounce or complaint: no more mail

    def writable(self) -> bool:
        return self.status != READ_ONLY

    def grace_ends(self, grace_days: int = GRACE_DAYS) -> int | None:
        return None if self.unpaid_since is None else self.unpaid_since + grace_days * DAY

    def mail_to(self) -> str | None:
        """Where mail may go: an address that has not bounced or complained."""
        return None if self.suppressed or not self.email else self.email


def new_standing(user_id: str, now: int, email: str | None,
                 trial_days: int = TRIAL_DAYS) -> Standing:
    return Standing(user_id, TRIAL, now, now + trial_days * DAY, email=email)


def check_email(value: object) -> str | None:
    """The optional address given at sign-up: None, or a plausible address."""
    from .errors import BadRequest

    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_EMAIL or not _EMAIL.match(value):
        raise BadRequest("email must be an address like name@example.com "
                         f"(at most {MAX_EMAIL} characters), or left out")
    return value


def due_for_read_only(s: Standing, now: int, grace_days: int = GRACE_DAYS) -> str | None:
    """Why the account must become read-only now, or None."""
    if s.status == PAST_DUE and s.unpaid_since is not None \
            and now >= s.unpaid_since + grace_days * DAY:
        return "unpaid"
    if s.status == TRIAL and now >= s.trial_ends and not s.has_payment_method:
        return "trial"
    return None


def after_trial(s: Standing, now: int) -> str | None:
    """A trial that ended with a payment method on file simply becomes active."""
    if s.status == TRIAL and now >= s.trial_ends and s.has_payment_method:
        return ACTIVE
    return None


def period_key(start: int) -> str:
    """The id of a billing period in the store and in idempotency keys."""
    return f"{start:012d}"
