"""The local stack's commit transaction in moto, with and without
local.moto_patches.snapshot_moto_transactions, side by side in one process:
a 5-item TransactWriteItems (like a fenced commit) on a table already
holding `items` items. Only the local stack's cost: real DynamoDB has no
such per-table copy.

    .venv/bin/python -m benchmarks.moto_txn [--items 5000] [--n 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

TABLE = "bench"


def _txn(i: int) -> list[dict[str, Any]]:
    return [{"Put": {"TableName": TABLE, "ConditionExpression": "attribute_not_exists(pk)",
                     "Item": {"pk": {"S": f"t{i}"}, "sk": {"S": f"{j}"},
                              "v": {"S": "x" * 100}}}} for j in range(5)]


def measure(items: int, n: int) -> dict[str, Any]:
    import boto3
    from moto import mock_aws
    from moto.dynamodb import models

    from local.moto_patches import snapshot_moto_transactions

    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        db.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"}
                                              for a in ("pk", "sk")],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}])
        backend = models.dynamodb_backends["123456789012"]["us-east-1"]
        for i in range(items):  # straight into the backend: setup, not measured
            backend.put_item(TABLE, {"pk": {"S": f"p{i % 500}"}, "sk": {"S": str(i)},
                                     "v": {"S": "y" * 200}})
        out: dict[str, float] = {}
        seq = 0
        for label, patched in (("whole_table_copy", False), ("touched_items_only", True),
                               ("whole_table_copy_again", False)):
            undo = snapshot_moto_transactions() if patched else (lambda: None)
            try:
                samples = []
                for _ in range(n):
                    seq += 1
                    t0 = time.perf_counter()
                    db.transact_write_items(TransactItems=_txn(seq))  # type: ignore[arg-type]
                    samples.append((time.perf_counter() - t0) * 1000)
            finally:
                undo()
            out[label] = round(statistics.median(samples), 2)
    before = min(out["whole_table_copy"], out.pop("whole_table_copy_again"))
    return {"items": items, "n": n, "whole_table_copy": before,
            "touched_items_only": out["touched_items_only"],
            "unit": "ms per 5-item TransactWriteItems (median), moto in-process"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=5000)
    p.add_argument("-n", type=int, default=20)
    a = p.parse_args()
    print(json.dumps(measure(a.items, a.n)))


if __name__ == "__main__":
    main()
