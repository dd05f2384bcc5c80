"""Bounces and complaints stop mail; usage warnings fire once per level a
month; an unknown scheduled event is dropped; every job is idempotent."""
from __future__ import annotations

import json
import time
from dataclasses import replace

from app import mail_notices
from chalicelib import jobs
from chalicelib.core.metering import Prices
from tests.billing_support import Billed, outbox


def sns(message: object) -> dict[str, object]:
    body = message if isinstance(message, str) else json.dumps(message)
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": body}}]}


def test_a_bounce_or_complaint_stops_further_mail(billed: Billed) -> None:
    b = billed
    dev = b.signup("bouncy@example.com")
    before = len(outbox())
    got = mail_notices(sns({"notificationType": "Bounce", "bounce": {
        "bouncedRecipients": [{"emailAddress": "Bouncy@Example.com"}]}}), None)
    assert got == {"suppressed": 1}
    b.h.add_device(dev.user_id, dev.auth_key, dev.account_seed)  # would mail a notice
    assert len(outbox()) == before
    b.signup("angry@example.com")
    assert mail_notices(sns({"eventType": "Complaint", "complaint": {
        "complainedRecipients": [{"emailAddress": "angry@example.com"}]}}), None) == \
        {"suppressed": 1}
    for junk in ("not json", [], {"notificationType": "Delivery"}, {"notificationType": "Bounce"},
                 {"notificationType": "Bounce", "bounce": {"bouncedRecipients": [7, {}]}}):
        assert mail_notices(sns(junk), None) == {"suppressed": 0}
    assert mail_notices({"Records": "x"}, None) == {"suppressed": 0}
    assert mail_notices("nonsense", None) == {"suppressed": 0}


def test_usage_warnings_once_per_level_a_month(billed: Billed) -> None:
    b, rt = billed, billed.h.rt
    dev = b.signup("full@example.com")
    rt.settings = replace(rt.settings, prices=Prices(quota_bytes=10_000))  # a tiny plan
    now = int(time.time())
    assert jobs.run_job(rt, {"job": "usage_warnings"}, now)["sent"] == 0
    b.h.commit(b.h.stage(dev, "a" * 32, 0, manifest=b"m" * 100, chunks=(b"x" * 8000,)).key)
    for _ in range(2):
        jobs.run_job(rt, {"job": "usage_warnings"}, now)
    # up to the quota exactly (one byte more would be refused: 413 over_quota)
    b.h.commit(b.h.stage(dev, "b" * 32, 0, manifest=b"m" * 100, chunks=(b"y" * 1800,)).key)
    for _ in range(2):
        jobs.run_job(rt, {"job": "usage_warnings"}, now)
    subjects = [m["subject"] for m in outbox() if m["to"] == ["full@example.com"]]
    assert [s for s in subjects if "quota" in s] == [
        "Your Sealsync storage has passed 80 % of its quota",
        "Your Sealsync storage has reached its quota"]


def test_unknown_scheduled_events_are_dropped(billed: Billed) -> None:
    for event in ({"job": "format_disk"}, {}, [], "invoice_run", {"job": 7}, None):
        assert jobs.run_job(billed.h.rt, event, int(time.time()))["job"] is None
