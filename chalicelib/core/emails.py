"""The account emails, pure: subject and plain-text body from numbers,
times and addresses only. Nothing here can take a file name, a path or
content: the server has none to give (invariant 6), and the zero-knowledge
scan reads every message sent (tests/client_e2e/test_zero_knowledge.py).
A device's name is encrypted on the client, so the enrolment notice says
when and from where, never which device.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .quota import how_space_frees

SIGNATURE = "\n\n-- \nSealsync. Your files are end-to-end encrypted: we cannot read them.\n"


@dataclass(frozen=True)
class Email:
    kind: str  # welcome, device, usage, invoice, payment_failed, read_only, trial_ended
    subject: str
    body: str


def _when(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def _day(epoch: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _usd(cents: int) -> str:
    return f"${cents / 100:.2f}"


def welcome(trial_ends: int) -> Email:
    return Email("welcome", "Welcome to Sealsync",
                 "Your account is ready. You pay only for what you store and transfer; "
                 f"your free trial runs until {_day(trial_ends)}. "
                 "Run `sealsync usage DIR` at any time to see what you use." + SIGNATURE)


def device_enrolled(at: int, source_ip: str) -> Email:
    return Email("device", "A new device was added to your Sealsync account",
                 f"A device was enrolled in your account at {_when(at)} from the address "
                 f"{source_ip}. If this was not you, change your passphrase now: "
                 "a device can only enrol with it." + SIGNATURE)


def usage_warning(level: int, stored: int, quota: int, retention_days: int = 0) -> Email:
    what = "reached" if level >= 100 else f"passed {level} % of"
    then = ("New uploads are refused; nothing is deleted, and downloads and deletes "
            f"keep working. {how_space_frees(retention_days)}." if level >= 100 else
            "At the quota, new uploads are refused; nothing is ever deleted, and "
            "downloads and deletes keep working.")
    return Email("usage", f"Your Sealsync storage has {what} its quota",
                 f"You store {_gb(stored)} of your {_gb(quota)} quota. {then}" + SIGNATURE)


def invoice(cents: int, period_start: int, period_end: int, paid: bool) -> Email:
    state = "was paid" if paid else "is due"
    return Email("invoice", f"Your Sealsync invoice: {_usd(cents)}",
                 f"Your invoice for {_day(period_start)} to {_day(period_end - 1)} "
                 f"comes to {_usd(cents)} and {state}. "
                 "`sealsync usage DIR` shows the usage behind it." + SIGNATURE)


def payment_failed(cents: int, grace_ends: int) -> Email:
    return Email("payment_failed", "Your Sealsync payment failed",
                 f"We could not charge {_usd(cents)}. Update your payment method before "
                 f"{_day(grace_ends)}; after that your account becomes read-only "
                 "(you can still download everything, nothing is deleted)." + SIGNATURE)


def read_only(reason: str) -> Email:
    why = ("your free trial ended without a payment method" if reason == "trial"
           else "an invoice stayed unpaid past the grace period")
    return Email("read_only", "Your Sealsync account is read-only",
                 f"Your account is read-only because {why}. You can still download "
                 "every file; nothing is deleted. Add a payment method or pay the open "
                 "invoice and uploads resume at once." + SIGNATURE)
