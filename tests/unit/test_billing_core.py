"""core/billing.py and core/emails.py: the standing rules, and mail that
can only carry numbers, times and an address (no file name can get in)."""
from __future__ import annotations

import inspect
from dataclasses import replace

import pytest

from chalicelib.core import billing as core
from chalicelib.core import emails
from chalicelib.core.errors import BadRequest

T0 = 1_767_225_600
DAY = core.DAY


def test_the_standing_moves_by_the_rules() -> None:
    s = core.new_standing("u" * 32, T0, None, trial_days=30)
    assert s.status == core.TRIAL and s.writable() and s.trial_ends == T0 + 30 * DAY
    assert core.due_for_read_only(s, T0 + 29 * DAY) is None
    assert core.due_for_read_only(s, T0 + 30 * DAY) == "trial"
    with_card = replace(s, has_payment_method=True)
    assert core.due_for_read_only(with_card, T0 + 31 * DAY) is None
    assert core.after_trial(with_card, T0 + 31 * DAY) == core.ACTIVE
    assert core.after_trial(with_card, T0 + 1) is None
    unpaid = replace(with_card, status=core.PAST_DUE, unpaid_since=T0)
    assert unpaid.writable() and unpaid.grace_ends(14) == T0 + 14 * DAY
    assert core.due_for_read_only(unpaid, T0 + 14 * DAY - 1, 14) is None
    assert core.due_for_read_only(unpaid, T0 + 14 * DAY, 14) == "unpaid"
    assert not replace(unpaid, status=core.READ_ONLY).writable()


def test_mail_goes_only_to_an_address_that_did_not_bounce() -> None:
    s = core.new_standing("u" * 32, T0, "a@example.com")
    assert s.mail_to() == "a@example.com"
    assert replace(s, suppressed=True).mail_to() is None
    assert core.new_standing("u" * 32, T0, None).mail_to() is None


@pytest.mark.parametrize("bad", ["", "no-at", "a@b", "a b@example.com", 7, "x" * 250 + "@e.com",
                                 "a@example.com\nBcc: b@example.com"])
def test_email_addresses_are_checked(bad: object) -> None:
    with pytest.raises(BadRequest):
        core.check_email(bad)
    assert core.check_email(None) is None
    assert core.check_email("first.last+tag@mail.example.org") == "first.last+tag@mail.example.org"


def test_every_template_takes_numbers_times_and_addresses_only() -> None:
    """No template has a parameter a name or content could travel in."""
    allowed = {int: "numbers and times", str: "source_ip / reason"}
    for name in ("welcome", "device_enrolled", "usage_warning", "invoice", "payment_failed",
                 "read_only"):
        fn = getattr(emails, name)
        for p in inspect.signature(fn).parameters.values():
            assert p.annotation in ("int", "bool") or p.name in ("source_ip", "reason"), \
                (name, p.name, allowed)
    mail = emails.device_enrolled(T0, "203.0.113.7")
    assert "2026-01-01 00:00 UTC" in mail.body and "203.0.113.7" in mail.body
    assert "$1.23" in emails.invoice(123, T0, T0 + 31 * DAY, True).subject
    assert "read-only" in emails.read_only("unpaid").subject
    assert "80 %" in emails.usage_warning(80, 8 * 10**9, 10 * 10**9).subject


def test_the_quota_mail_says_what_happens_at_the_quota() -> None:
    """Past the quota uploads are refused, nothing is deleted (issue 15):
    the mail must not promise that storage goes on at the same rate."""
    near = emails.usage_warning(80, 8 * 10**9, 10 * 10**9).body
    full = emails.usage_warning(100, 10 * 10**9, 10 * 10**9).body
    for body in (near, full):
        assert "uploads are refused" in body and "nothing" in body and "deleted" in body
        assert "downloads and deletes keep working" in body and "billed" not in body
    assert "At the quota" in near and "New uploads are refused" in full
