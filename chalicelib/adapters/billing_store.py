"""DynamoDB: billing standing, invoice records, processed webhooks, sent
mail and the mail suppression list. Every write that makes an effect
happen once is conditional.

  BILLING#{user[0]}  {user}          the Standing (core/billing.py); one
                                     item per account, 16 shards a job queries
  A#{user}           INV#{period}    the period's invoice: claimed, then its
                                     provider id, amount, status
  WH#{event}         WH              a webhook event already handled (TTL)
  A#{user}           MAIL#{key}      a message already sent (once per key)
  SUPPRESS           {address}       bounced or complained: never mail it
  CUS#{customer}     CUS             the provider's customer -> the account
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from ..core.billing import Standing
from .meta import ddb_item, ddb_plain

SHARDS = "0123456789abcdef"
WEBHOOK_TTL_S = 90 * 86400


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


def _key(user_id: str) -> dict[str, Any]:
    return ddb_item(pk=f"BILLING#{user_id[0]}", sk=user_id)


class BillingStore:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    # -- standing ------------------------------------------------------------------
    def create(self, s: Standing) -> None:
        self.db.put_item(TableName=self.table, ConditionExpression="attribute_not_exists(pk)",
                         Item={**_key(s.user_id), **ddb_item(
                             status=s.status, created=s.created, trial_ends=s.trial_ends,
                             email=s.email)})

    def get(self, user_id: str, consistent: bool = True) -> Standing | None:
        got = self.db.get_item(TableName=self.table, Key=_key(user_id),
                               ConsistentRead=consistent)
        return None if "Item" not in got else self._standing(ddb_plain(got["Item"]))

    @staticmethod
    def _standing(it: dict[str, Any]) -> Standing:
        def num(k: str) -> int | None:
            return None if it.get(k) is None else int(it[k])

        return Standing(user_id=it["sk"], status=it["status"], created=int(it["created"]),
                        trial_ends=int(it["trial_ends"]), customer=it.get("customer"),
                        has_payment_method=bool(it.get("pm")), unpaid_since=num("unpaid_since"),
                        email=it.get("email"), suppressed=bool(it.get("suppressed")))

    def all(self) -> Iterator[Standing]:
        """Every account's standing, shard by shard (the jobs' input)."""
        for shard in SHARDS:
            pages = self.db.get_paginator("query").paginate(
                TableName=self.table, ConsistentRead=True,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues=ddb_item(**{":p": f"BILLING#{shard}"}))
            for page in pages:
                for raw in page.get("Items", []):
                    yield self._standing(ddb_plain(raw))

    def move(self, s: Standing, to: Standing) -> bool:
        """Replace `s` by `to` only if the status and unpaid_since are still
        those of `s` (what this caller decided on). True if it moved."""
        sets = {"status": to.status, "customer": to.customer, "pm": to.has_payment_method,
                "unpaid_since": to.unpaid_since}
        present = {k: v for k, v in sets.items() if v is not None}
        absent = [k for k, v in sets.items() if v is None]
        cond = "#status = :was_status AND " + (
            "unpaid_since = :was_unpaid" if s.unpaid_since is not None
            else "attribute_not_exists(unpaid_since)")
        values = {**{f":{k}": v for k, v in present.items()}, ":was_status": s.status}
        if s.unpaid_since is not None:
            values[":was_unpaid"] = s.unpaid_since
        expr = "SET " + ", ".join(f"#{k} = :{k}" for k in present)
        if absent:
            expr += " REMOVE " + ", ".join(f"#{k}" for k in absent)
        try:
            self.db.update_item(TableName=self.table, Key=_key(s.user_id),
                                UpdateExpression=expr, ConditionExpression=cond,
                                ExpressionAttributeNames={f"#{k}": k for k in sets},
                                ExpressionAttributeValues=ddb_item(**values))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def set_customer(self, s: Standing, customer: str) -> Standing:
        """Record the provider's customer id once (the first writer wins)."""
        try:
            self.db.update_item(TableName=self.table, Key=_key(s.user_id),
                                UpdateExpression="SET customer = :c",
                                ConditionExpression="attribute_not_exists(customer)",
                                ExpressionAttributeValues=ddb_item(**{":c": customer}))
        except ClientError as exc:
            if not _conditional_failed(exc):
                raise
            return self.get(s.user_id) or s
        return replace(s, customer=customer)

    def link_customer(self, customer: str, user_id: str) -> None:
        self.db.put_item(TableName=self.table,
                         Item=ddb_item(pk=f"CUS#{customer}", sk="CUS", user=user_id))

    def user_of(self, customer: str) -> str | None:
        got = self.db.get_item(TableName=self.table,
                               Key=ddb_item(pk=f"CUS#{customer}", sk="CUS"))
        return None if "Item" not in got else str(ddb_plain(got["Item"])["user"])

    def set_payment_method(self, user_id: str) -> None:
        self.db.update_item(TableName=self.table, Key=_key(user_id),
                            UpdateExpression="SET pm = :t",
                            ExpressionAttributeValues=ddb_item(**{":t": True}))

    # -- invoices ------------------------------------------------------------------
    def invoice(self, user_id: str, period: str) -> dict[str, Any] | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"A#{user_id}", sk=f"INV#{period}"))
        return None if "Item" not in got else ddb_plain(got["Item"])

    def claim_invoice(self, user_id: str, period: str, cents: int, now: int) -> bool:
        """The period's invoice is this run's to make. False: another run's."""
        try:
            self.db.put_item(TableName=self.table,
                             ConditionExpression="attribute_not_exists(pk)",
                             Item=ddb_item(pk=f"A#{user_id}", sk=f"INV#{period}",
                                           status="claimed", cents=cents, claimed=now))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def record_invoice(self, user_id: str, period: str, invoice_id: str, status: str) -> None:
        self.db.update_item(TableName=self.table,
                            Key=ddb_item(pk=f"A#{user_id}", sk=f"INV#{period}"),
                            UpdateExpression="SET invoice = :i, #s = :s",
                            ExpressionAttributeNames={"#s": "status"},
                            ExpressionAttributeValues=ddb_item(**{":i": invoice_id,
                                                                  ":s": status}))

    # -- webhooks, mail --------------------------------------------------------------
    def first_time(self, pk: str, sk: str, now: int, ttl_s: int | None = None) -> bool:
        """Record (pk, sk) once; True only for the first caller."""
        try:
            self.db.put_item(TableName=self.table,
                             ConditionExpression="attribute_not_exists(pk)",
                             Item=ddb_item(pk=pk, sk=sk, at=now,
                                           expires_at=None if ttl_s is None else now + ttl_s))
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def seen(self, pk: str, sk: str) -> bool:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=pk, sk=sk))
        return "Item" in got

    def forget(self, pk: str, sk: str) -> None:
        self.db.delete_item(TableName=self.table, Key=ddb_item(pk=pk, sk=sk))

    def suppress(self, address: str, why: str, now: int) -> None:
        self.db.put_item(TableName=self.table,
                         Item=ddb_item(pk="SUPPRESS", sk=address.lower(), why=why, at=now))

    def suppressed(self, address: str) -> bool:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk="SUPPRESS", sk=address.lower()))
        return "Item" in got
