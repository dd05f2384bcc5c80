"""`make cost`, the back office: the monthly fixed cost of the scheduler,
the mail path and billing, and what one typical user costs a month against
what the default price list (core.metering.Prices) invoices them.

The typical user (the issue's profile): 10 GB stored, 1,000 file versions
a month, sent by the desktop client in batches (the batch model of
deploy/cost.py prices the commits), 2 account emails a month, one card
payment a month. Fixed: the hourly jobs and the monthly invoice run fire
whatever the number of accounts.
"""
from __future__ import annotations

from typing import Any

from chalicelib.core.metering import GIB, MONTH_HOURS, Prices

HOURLY_JOBS = 3  # usage_warnings, trial_expiry, grace_read_only (chalicelib/jobs.py)
MONTHLY_JOBS = 1  # invoice_run
JOB_MS = 200.0  # assumption: a job run's fixed part (cold start amortized), warm
JOB_MEMORY_MB = 512
PROFILE = {"stored_gb": 10.0, "versions": 1000, "mails": 2, "gets": 200, "egress_gb": 1.0}
# per account per job run: its share of the standings Query (~200 B of 4 KB,
# consistent) and, for usage_warnings, one consistent GetItem of TOTAL
RRU_PER_ACCOUNT_HOUR = HOURLY_JOBS * 200 / 4096 + 1.0
# per version kept: head share, revision and feed entry, ~400 B each
TABLE_BYTES_PER_VERSION = 3 * 400
# A second region (docs/OPERATIONS.md "Regions"): per version, the items its
# commit writes (head, revision, feed entry, usage total and hour bucket,
# upload record) each replicated once, and ~2 objects (manifest or bundle
# share, a pack or chunk) replicated; assume 1 GB of it written a month.
REPLICATED_WRITES_PER_VERSION = 6
REPLICATED_OBJECTS_PER_VERSION = 2
WRITTEN_GB = 1.0


def _p(prices: dict[str, Any], key: str) -> float:
    v = prices["prices"][key]
    return float(v["usd"]) / float(v["per"])


def fixed_rows(prices: dict[str, Any]) -> list[tuple[str, float]]:
    runs = HOURLY_JOBS * MONTH_HOURS + MONTHLY_JOBS
    gb_s = runs * JOB_MS / 1000 * JOB_MEMORY_MB / 1024
    return [
        ("EventBridge Scheduler invocations", runs * _p(prices, "scheduler_invocation")),
        ("jobs Lambda requests", runs * _p(prices, "lambda_request")),
        ("jobs Lambda GB-seconds", gb_s * _p(prices, "lambda_gb_s_x86")),
        ("SNS topic, SES configuration set", 0.0),
    ]


def user_rows(prices: dict[str, Any], batch_usd_per_million: float) -> list[tuple[str, float]]:
    u = PROFILE
    versions = float(u["versions"])
    return [
        ("S3 storage (10 GB)", u["stored_gb"] * _p(prices, "s3_storage_gb_month")),
        ("DynamoDB storage (a month of versions)",
         versions * TABLE_BYTES_PER_VERSION / 1e9 * _p(prices, "dynamodb_storage_gb_month")),
        ("commits (1,000 versions in batches)", versions * batch_usd_per_million / 1e6),
        ("metering + jobs reads", RRU_PER_ACCOUNT_HOUR * MONTH_HOURS
         * _p(prices, "dynamodb_rru")),
        ("downloads (200 GETs, 1 GB out)",
         u["gets"] * _p(prices, "s3_get") + u["egress_gb"] * _p(prices, "s3_egress_gb")),
        ("account mail (2)", u["mails"] * _p(prices, "ses_email")),
    ]


def replica_rows(prices: dict[str, Any]) -> list[tuple[str, float]]:
    """What the typical user's replica in a second region adds a month (no
    fixed part: the directory and the replication role cost nothing idle)."""
    u, versions = PROFILE, float(PROFILE["versions"])
    return [
        ("CRR transfer (1 GB written)", WRITTEN_GB * _p(prices, "s3_replication_transfer_gb")),
        ("replica S3 storage (10 GB)", u["stored_gb"] * _p(prices, "s3_storage_gb_month")),
        ("replica PUTs", versions * REPLICATED_OBJECTS_PER_VERSION * _p(prices, "s3_put")),
        ("global table replicated writes",
         versions * REPLICATED_WRITES_PER_VERSION * _p(prices, "dynamodb_replicated_wru")),
        ("replica table storage",
         versions * TABLE_BYTES_PER_VERSION / 1e9 * _p(prices, "dynamodb_storage_gb_month")),
    ]


def invoice_usd(p: Prices) -> float:
    """What the default price list charges the typical user a month."""
    u = PROFILE
    cents = (u["stored_gb"] * 1e9 / GIB * p.storage_gb_month
             + u["versions"] / 1000 * p.per_1000_puts
             + u["gets"] / 10000 * p.per_10000_gets + u["egress_gb"] * 1e9 / GIB * p.egress_gb)
    return cents / 100


def report(prices: dict[str, Any], batch_usd_per_million: float) -> dict[str, Any]:
    fixed = fixed_rows(prices)
    user = user_rows(prices, batch_usd_per_million)
    invoice = invoice_usd(Prices())
    stripe_fee = _p(prices, "stripe_card_fixed") + invoice * _p(prices, "stripe_card_percent")
    aws = sum(v for _, v in user)
    return {"fixed_usd_per_month": sum(v for _, v in fixed), "fixed": dict(fixed),
            "user_profile": PROFILE, "user": dict(user), "user_aws_usd_per_month": aws,
            "user_invoice_usd": invoice, "user_stripe_fee_usd": stripe_fee,
            "user_margin_usd": invoice - aws - stripe_fee,
            "replica": dict(replica_rows(prices)),
            "replica_usd_per_month": sum(v for _, v in replica_rows(prices))}


def print_report(r: dict[str, Any]) -> None:
    print("\nThe back office (scheduler, mail, billing), per month:")
    for name, usd in r["fixed"].items():
        print(f"  {name:40} ${usd:>9.4f}")
    print(f"  {'fixed total':40} ${r['fixed_usd_per_month']:>9.4f}  whatever the accounts")
    print("A typical user (10 GB stored, 1,000 file versions, 2 mails, 1 GB out), per month:")
    for name, usd in r["user"].items():
        print(f"  {name:40} ${usd:>9.4f}")
    print(f"  {'AWS total':40} ${r['user_aws_usd_per_month']:>9.4f}")
    print(f"  {'Stripe fee (30c + 2.9 % of the invoice)':40} ${r['user_stripe_fee_usd']:>9.4f}")
    print(f"  {'invoiced at the default prices':40} ${r['user_invoice_usd']:>9.4f}  "
          f"(margin ${r['user_margin_usd']:.2f})")
    print("The same user's replica in a second region (disaster recovery), per month:")
    for name, usd in r["replica"].items():
        print(f"  {name:40} ${usd:>9.4f}")
    print(f"  {'replica total':40} ${r['replica_usd_per_month']:>9.4f}")
