"""`make dev`'s back office, over HTTP: the stack runs localstripe and the
local scheduler; a new account with an email and a card, an upload, then
the invoice run fired (twice) through `python -m local.scheduler`: the
invoice is paid at localstripe, the mail is in moto's SES outbox, and the
usage counters equal what the table stores, to the byte."""
from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from chalicelib.core import metering
from local.apiclient import Client, Device, new_file_id, public_key
from local.stripe import TEST_KEY
from tests.e2e.conftest import REPO, StackProcess, running_stack

pytestmark = pytest.mark.e2e


def fire(sp: StackProcess, job: str, at: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "local.scheduler", "fire", job, "--at",
                          str(at), "--state-file", str(sp.state_file)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, check=True)
    return dict(json.loads(out.stdout))


def outbox(sp: StackProcess) -> list[dict[str, Any]]:
    """moto server's record of every message SES sent."""
    data = requests.get(sp.state["aws_endpoint"] + "/moto-api/data.json", timeout=10).json()
    return list(data.get("ses", {}).get("Message", []))


@pytest.fixture(scope="module")
def priced_stack(tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch_module: pytest.MonkeyPatch) -> Iterator[StackProcess]:
    """A stack whose price list makes a few kilobytes cost cents."""
    monkeypatch_module.setenv("SEALSYNC_PRICES", json.dumps(
        {"storage_gb_month": 1024**3 / 1000, "per_1000_puts": 10_000}))
    with running_stack(tmp_path_factory.mktemp("priced")) as sp:
        yield sp


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_invoice_run_on_the_local_stack(priced_stack: StackProcess) -> None:
    import stripe

    stack = priced_stack
    api = Client(stack.state["api"])
    address = f"user-{secrets.token_hex(4)}@example.com"
    auth_key, account_seed = secrets.token_hex(32), secrets.token_bytes(32)
    user = api.call("POST", "/v1/accounts", body={
        "auth_key": auth_key, "kdf": "k", "email": address,
        "signing_key": public_key(account_seed)}, expect=201)
    dev: Device = api.add_device(user["user_id"], auth_key, account_seed)
    api.upload(dev, new_file_id(), 0, b"sealed manifest" * 10, [b"chunk" * 3000])
    pm = stripe.StripeClient(TEST_KEY, base_addresses={"api": stack.state["stripe"]}) \
        .v1.payment_methods.create(params={"type": "card", "card": {
            "number": "4242424242424242", "exp_month": 12, "exp_year": 2040, "cvc": "123"}})
    api.call("POST", "/v1/account/billing/payment-method", dev, {"payment_method": pm.id})
    now = int(time.time())
    fire(stack, "trial_expiry", now + 31 * 86400)
    at = metering.month_of(now).end + 3600
    first, second = fire(stack, "invoice_run", at), fire(stack, "invoice_run", at)
    assert first == {"job": "invoice_run", "paid": 1}, first
    assert second == {"job": "invoice_run", "already invoiced": 1}, second
    customer = stripe.StripeClient(TEST_KEY, base_addresses={"api": stack.state["stripe"]}) \
        .v1.customers.list().data
    invoices = stripe.StripeClient(TEST_KEY, base_addresses={"api": stack.state["stripe"]}) \
        .v1.invoices.list(params={"customer": customer[0].id}).data
    assert [i.status for i in invoices if i.total > 0] == ["paid"]

    usage = api.call("GET", "/v1/account/usage", dev)
    ddb = boto3.client("dynamodb", endpoint_url=stack.state["aws_endpoint"],
                       region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    items = ddb.scan(TableName=stack.state["table"])["Items"]
    stored = sum(int(it["size"]["N"]) for it in items
                 if it["pk"]["S"].startswith(f"R#{dev.user_id}#"))
    assert usage["stored_bytes"] == stored == 150 + 15000
    mail = [m for m in outbox(stack) if address in json.dumps(m)]
    assert any("Welcome" in json.dumps(m) for m in mail), mail
    assert sum("Your Sealsync invoice" in json.dumps(m) for m in mail) == 1, mail
