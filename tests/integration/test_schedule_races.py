"""A schedule fired twice AT ONCE (real threads, moto over HTTP, real
localstripe): one invoice per account and period, one standing move, one
mail each. The claims and moves are conditional writes; this proves it
under a race, not only for a second firing after the first."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import requests

from chalicelib import jobs
from chalicelib.adapters.payments import Payments
from chalicelib.config import Runtime
from chalicelib.core import billing as core
from chalicelib.core import metering
from local.stripe import TEST_KEY, LocalStripe
from tests.billing_support import CARD_OK, TEST_PRICES
from tests.harness import Harness

pytestmark = pytest.mark.integration
RACERS = 4


def race(rt: Runtime, job: str, at: int) -> list[dict[str, Any]]:
    start = threading.Barrier(RACERS)
    out: list[dict[str, Any]] = []

    def one() -> None:
        start.wait()
        out.append(jobs.run_job(rt, {"job": job}, at))

    threads = [threading.Thread(target=one) for _ in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def mail_to(rt: Runtime, address: str) -> list[str]:
    data = requests.get(f"{rt.settings.aws_endpoint}/moto-api/data.json", timeout=10).json()
    return [str(m.get("subject")) for m in data.get("ses", {}).get("Message", [])
            if address in str(m.get("destinations"))]


def test_racing_invoice_runs_and_grace_jobs_have_one_effect(
        h: Harness, localstripe: LocalStripe) -> None:
    import secrets

    import stripe

    localstripe.flush()
    rt = h.rt
    rt.settings = replace(rt.settings, stripe_key=TEST_KEY, stripe_api_base=localstripe.url,
                          stripe_webhook_secret="whsec_x", prices=TEST_PRICES)
    rt.__dict__["payments"] = Payments(TEST_KEY, localstripe.url, "whsec_x")
    address = f"race-{secrets.token_hex(4)}@example.com"
    from local.apiclient import public_key

    auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
    user = h.post("/v1/accounts", {"auth_key": auth_key, "email": address,
                                   "signing_key": public_key(account_seed)}).json_body
    dev = h.add_device(user["user_id"], auth_key, account_seed)
    h.commit(h.stage(dev, "c" * 32, 0, manifest=b"m" * 64, chunks=(b"z" * 4000,)).key)
    client = stripe.StripeClient(TEST_KEY, base_addresses={"api": localstripe.url})
    pm = client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": CARD_OK, "exp_month": 12, "exp_year": 2040, "cvc": "123"}})
    assert h.post("/v1/account/billing/payment-method", {"payment_method": pm.id},
                  dev).status_code == 200
    now = int(time.time())
    assert sum(r["active"] for r in race(rt, "trial_expiry", now + 31 * core.DAY)) == 1

    results = race(rt, "invoice_run", metering.month_of(now).end + 3600)
    assert sum(r.get("paid", 0) for r in results) == 1, results
    s = rt.billing.get(dev.user_id)
    assert s is not None and s.customer
    billed = [i for i in client.v1.invoices.list(params={"customer": s.customer}).data
              if i.total > 0]
    assert len(billed) == 1 and billed[0].status == "paid"
    assert sum("Your Sealsync invoice" in m for m in mail_to(rt, address)) == 1

    # an unpaid account past its grace period: racing grace jobs move it once
    assert rt.billing.move(s, replace(s, status=core.PAST_DUE, unpaid_since=now))
    results = race(rt, "grace_read_only", now + 15 * core.DAY)
    assert sum(r["read_only"] for r in results) == 1, results
    assert sum("read-only" in m for m in mail_to(rt, address)) == 1


def test_racing_retention_runs_expire_each_version_once(h: Harness) -> None:
    """Four `retention` jobs at once over one account: each superseded
    version expires once, and the stored bytes drop by exactly their sizes."""
    import secrets

    from tests.unit.test_gc_collector import commit_pack
    from tests.unit.test_retention_job import commit

    dev = h.signup()
    files = []
    for _ in range(3):
        _pid, f = commit_pack(h, dev, [secrets.token_bytes(100)])
        commit(h, dev, f, 1, [secrets.token_bytes(90)])
        commit(h, dev, f, 2, [secrets.token_bytes(80)])
        files.append(f)
    stored, versions = h.rt.usage.total(dev.user_id)
    old = [r for f in files for r in h.rt.retention.revisions(dev.user_id, f) if r.revision < 3]
    reports = race(h.rt, "retention", int(time.time()) + 31 * 24 * 3600)
    assert sum(r["expired"] for r in reports) == len(old) == 6
    assert sum(r["bytes_freed"] for r in reports) == sum(r.size for r in old)
    assert h.rt.usage.total(dev.user_id) == (stored - sum(r.size for r in old), versions - 6)
