"""The back office end to end, against localstripe and moto's SES: a new
account, a payment method, usage, the period-end invoice run paid by Stripe,
the emails; a declined card through the payment-failed mail and the grace
period to read-only (402 on writes, reads work, nothing lost), then paying
restores writes. Every schedule fires twice, every webhook arrives twice:
one effect each."""
from __future__ import annotations

import json
import time

from chalicelib import jobs
from chalicelib.core import billing as core
from chalicelib.core import metering
from chalicelib.core.ids import new_id
from tests.billing_support import CARD_DECLINED, CARD_OK, DEBIT_FAILS, Billed, outbox
from tests.harness import BatchItem, Device

DAY = 86400


def fire(b: Billed, job: str, at: float) -> dict[str, object]:
    """The scheduler fires `job` twice at `at` (EventBridge is at least once)."""
    first = jobs.run_job(b.h.rt, {"job": job}, int(at))
    second = jobs.run_job(b.h.rt, {"job": job}, int(at))
    return {"first": first, "second": second}


def mails(to: str) -> list[str]:
    return [m["subject"] for m in outbox() if m["to"] == [to]]


def stored_truth(b: Billed, user_id: str) -> int:
    got = b.h.rt.dynamodb.scan(TableName=b.h.rt.settings.table)["Items"]
    return sum(int(it["size"]["N"]) for it in got if it["pk"]["S"].startswith(f"R#{user_id}#"))


def upload(b: Billed, dev: Device, n: int = 2) -> list[str]:
    files = [new_id() for _ in range(n)]
    batch = b.h.stage_batch(dev, [BatchItem(f, 0, b"m" * (100 + i), (bytes([i]) * 5000,))
                                  for i, f in enumerate(files)])
    for _ in range(2):  # the event, duplicated
        assert b.h.commit(batch.key).status == "finished"
    return files


def test_paid_month_end_to_end(billed: Billed) -> None:
    b, rt = billed, billed.h.rt
    dev = b.signup("alice@example.com")
    assert mails("alice@example.com") == ["Welcome to Sealsync",  # and its first device
                                          "A new device was added to your Sealsync account"]
    b.h.add_device(dev.user_id, dev.auth_key, dev.account_seed)  # from the test client
    device_mail = [m for m in outbox() if m["subject"].startswith("A new device")]
    assert len(device_mail) == 2 and "UTC from the address" in device_mail[-1]["body"]

    upload(b, dev)
    r = b.h.post("/v1/account/billing/payment-method",
                 {"payment_method": b.payment_method(CARD_OK)}, dev)
    assert r.status_code == 200 and r.json_body["has_payment_method"], r.body
    now = time.time()
    assert fire(b, "trial_expiry", now + 31 * DAY)["first"]["active"] == 1
    assert rt.billing.get(dev.user_id).status == core.ACTIVE

    next_month = metering.month_of(now).end + 3600
    runs = fire(b, "invoice_run", next_month)
    assert runs["first"]["paid"] == 1 and runs["second"]["already invoiced"] == 1

    standing = rt.billing.get(dev.user_id)
    invoices = b.client().v1.invoices.list(params={"customer": standing.customer}).data
    usage_paid = [i for i in invoices if i.total > 0]
    assert len(usage_paid) == 1 and usage_paid[0].status == "paid"
    assert [s for s in mails("alice@example.com") if "invoice" in s] == [
        f"Your Sealsync invoice: ${usage_paid[0].total / 100:.2f}"]
    # the counters behind the invoice equal what is stored, to the byte
    usage = b.h.get("/v1/account/usage", dev).json_body
    assert usage["stored_bytes"] == stored_truth(b, dev.user_id) == 2 * 5000 + 100 + 101
    # localstripe's signed webhook, delivered twice: one effect
    body, sig = b.hooks.wait_for("invoice.payment_succeeded")
    assert b.deliver(body, sig).json_body == {"received": True, "duplicate": False}
    assert b.deliver(body, sig).json_body == {"received": True, "duplicate": True}
    assert rt.billing.get(dev.user_id).status == core.ACTIVE


def test_failed_payment_grace_read_only_and_paying_restores(billed: Billed) -> None:
    """A debit that fails after processing: only the webhook tells."""
    b, rt = billed, billed.h.rt
    dev = b.signup("bob@example.com")
    files = upload(b, dev)
    b.h.post("/v1/account/billing/payment-method",
             {"payment_method": b.payment_method(DEBIT_FAILS)}, dev)
    now = time.time()
    fire(b, "trial_expiry", now + 31 * DAY)
    runs = fire(b, "invoice_run", metering.month_of(now).end + 3600)
    assert runs["first"]["payment pending"] == 1
    assert runs["second"].get("already invoiced") == 1
    assert rt.billing.get(dev.user_id).status == core.ACTIVE  # nothing is known yet

    body, sig = b.hooks.wait_for("invoice.payment_failed")
    for _ in range(2):  # delivered twice: one effect
        assert b.deliver(body, sig).status_code == 200
    s = rt.billing.get(dev.user_id)
    assert s.status == core.PAST_DUE and s.unpaid_since is not None
    assert [m for m in mails("bob@example.com") if "payment failed" in m] == [
        "Your Sealsync payment failed"]

    # still within the grace period: writes work
    assert fire(b, "grace_read_only", s.unpaid_since + 13 * DAY)["first"]["read_only"] == 0
    assert b.h.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                    "manifest_size": 8, "chunks": []}, dev).status_code == 201
    runs = fire(b, "grace_read_only", s.unpaid_since + 15 * DAY)
    assert (runs["first"]["read_only"], runs["second"]["read_only"]) == (1, 0)
    assert [m for m in mails("bob@example.com") if "read-only" in m] == [
        "Your Sealsync account is read-only"]

    # read-only: every write is a 402 that says why; reads work; nothing is gone
    for r in (b.h.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                       "manifest_size": 8, "chunks": []}, dev),
              b.h.post("/v1/batches", {"entries": [BatchItem(new_id(), 0).body()]}, dev),
              b.h.delete(f"/v1/files/{files[0]}?base_revision=1", dev)):
        assert r.status_code == 402, r.body
        assert r.json_body["error"] == "payment_required"
        assert "read-only" in r.json_body["message"] and "nothing is deleted" in \
            r.json_body["message"]
    for f in files:
        head = b.h.head(dev, f)
        assert head is not None and not head["deleted"] and head["manifest_url"]
    assert b.h.get("/v1/changes", dev).json_body["cursor"] == 2

    # a working card: the open invoice is paid, writes are back at once
    r = b.h.post("/v1/account/billing/payment-method",
                 {"payment_method": b.payment_method(CARD_OK)}, dev)
    assert r.status_code == 200 and r.json_body["status"] == core.ACTIVE, r.body
    assert r.json_body["writable"] is True
    assert b.h.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                    "manifest_size": 8, "chunks": []}, dev).status_code == 201
    open_ = b.client().v1.invoices.list(params={"customer": s.customer}).data
    assert not [i for i in open_ if i.status == "open"]


def test_a_declined_card_fails_at_once(billed: Billed) -> None:
    b, rt = billed, billed.h.rt
    dev = b.signup("dan@example.com")
    upload(b, dev)
    b.h.post("/v1/account/billing/payment-method",
             {"payment_method": b.payment_method(CARD_DECLINED)}, dev)
    now = time.time()
    fire(b, "trial_expiry", now + 31 * DAY)
    runs = fire(b, "invoice_run", metering.month_of(now).end + 3600)
    assert runs["first"]["payment failed"] == 1
    assert rt.billing.get(dev.user_id).status == core.PAST_DUE
    assert [m for m in mails("dan@example.com") if "payment failed" in m] == [
        "Your Sealsync payment failed"]
    r = b.h.post("/v1/account/billing/pay", {}, dev)  # still declined: still past due
    assert r.status_code == 200 and r.json_body["status"] == core.PAST_DUE


def test_webhooks_are_verified(billed: Billed) -> None:
    b = billed
    dev = b.signup(None)
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid",
                       "data": {"object": {"customer": "cus_x"}}}).encode()
    for sig in ("", "t=1,v1=00", "garbage"):
        r = b.deliver(body, sig)
        assert r.status_code == 400 and r.json_body["error"] == "bad_request", r.body
    assert b.deliver(b"x" * 300_000, "t=1,v1=00").status_code == 400
    assert b.h.get("/v1/account/billing", dev).json_body["status"] == core.TRIAL


def test_trial_without_payment_method_becomes_read_only(billed: Billed) -> None:
    b, rt = billed, billed.h.rt
    dev = b.signup("carol@example.com")
    runs = fire(b, "trial_expiry", time.time() + 31 * DAY)
    assert (runs["first"]["read_only"], runs["second"]["read_only"]) == (1, 0)
    assert rt.billing.get(dev.user_id).status == core.READ_ONLY
    assert b.h.post("/v1/uploads", {"file_id": new_id(), "base_revision": 0,
                                    "manifest_size": 8, "chunks": []}, dev).status_code == 402
    b.h.post("/v1/account/billing/payment-method",
             {"payment_method": b.payment_method(CARD_OK)}, dev)
    assert rt.billing.get(dev.user_id).status == core.ACTIVE
