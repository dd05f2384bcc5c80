"""The AWS calls Sealsync makes per file version, as counts and capacity
units: one single commit (POST /v1/uploads through its long poll) and one
batch of N new small files (POST /v1/batches through GET /v1/batches/{id}).

These are the figures tests/deploy/test_call_counts.py holds equal to what
the code does (it fails when the code's calls drift from them); cost.py
prices them. Kept apart so that the model the test checks reads on its own,
without the pricing and the report around it.
"""
from __future__ import annotations

from typing import Any

# Calls one commit makes, server side (the client's own PUTs come from the
# bench: s3_puts_per_small_file). Kept equal to what the code does by
# tests/deploy/test_call_counts.py.
# GetObject: the handler reads the manifest once to check its device signature
S3_CALLS = {"HeadObject": 3, "GetObject": 1, "CopyObject": 1, "DeleteObject": 1}
# A single commit is a batch of one (chalicelib/single.py), so these are the
# batch figures below at N = 1, plus its one chunk (the chunk index, at
# presign and at commit, and remembering it).
# GetItem: 1 the billing standing (read-only accounts: 402), 4 the device
# item (2 authorizer runs, the presign's write check, the commit's signature check),
# 1 the garbage collector's fence (read by every commit that references a
# chunk, known or not: chalicelib/pack_commit.py), 1 the batch's pack declaration
# (none: the chunk came alone), 1 the quota gate's read of the metered total
# at presign (chalicelib/quota.py)
DYNAMODB_CALLS = {"GetItem": 8,
                  # the batch record: its entries and its state
                  "PutItem": 2,
                  # the chunk index at presign and at commit, the head
                  "BatchGetItem": 3, "TransactWriteItems": 1,
                  # UP#{batch}: routing the key, under the lock, at the end and
                  # GET /v1/uploads/{id}; push: the user's devices
                  "Query": 5,
                  "BatchWriteItem": 1,
                  # finishing the batch; metering the PUT URLs POST /v1/uploads issued
                  "UpdateItem": 2}
# items <= 1 KiB written, <= 4 KiB read; the transaction's 2 usage counters add 4 WRU.
# Eventually consistent (half a unit): the standing and the chunk index at
# presign; the commit reads the chunk index consistently (versions expire:
# chalicelib/pack_commit.py)
DYNAMODB_UNITS = {"rru": 15.0, "wru": 21.0}
# SET NX PX + EVAL release for the file lock and for the feed lock, GET + SET
# of the feed-head hint (which saves the counter's GetItem once a user has
# committed), RPUSH + EXPIRE for two topics.
REDIS_COMMANDS = 10
# The waiting long poll adds BLPOP and its relay wake (RPUSH + EXPIRE).
REDIS_POLL_COMMANDS = 3
API_CALLS = 2  # POST /v1/uploads, GET /v1/uploads/{id}?wait=20
SQS_REQUESTS = 3  # S3's SendMessage, the poller's ReceiveMessage and DeleteMessage

# Batches: the calls one batch of N new small files (inline, no chunks)
# makes, from POST /v1/batches through the handler to GET /v1/batches/{id}.
# Measured at several N by tests/deploy/test_call_counts.py: a fixed part per
# batch, a part per transaction group of BATCH_GROUP entries, a part per page
# of BATCH_HEADS_PAGE heads, and a part per entry.
BATCH_GROUP = 47  # entries per TransactWriteItems (2 per file + 6 <= 100 actions)
BATCH_HEADS_PAGE = 100  # heads per BatchGetItem
# per batch; GetObject: one read of the bundle checks every entry's device signature
BATCH_S3_CALLS = {"HeadObject": 2, "GetObject": 1, "CopyObject": 1, "DeleteObject": 1}
# Create: the entries item and the state (2 PutItem); finish (1 UpdateItem);
# metering the PUT URLs issued (1 UpdateItem); 4 consistent Queries of
# UP#{batch} (routing, under the locks, the end, GET /v1/batches/{id}) + the
# push's Query of the user's devices; the billing standing (1 GetItem), the
# usage TOTAL for the storage quota (1 consistent GetItem) and the device item
# (4 consistent GetItems: 2 authorizer runs, the presign's write check, the
# commit's signature check).
BATCH_DYNAMODB_FIXED = {"GetItem": 6, "PutItem": 2, "UpdateItem": 2, "Query": 5}
BATCH_DYNAMODB_PER_GROUP = {"TransactWriteItems": 1}
BATCH_DYNAMODB_PER_PAGE = {"BatchGetItem": 1}
# Capacity units as if every item were <= 1 KiB written / 4 KiB read (the
# entries item and the Queries are not: see BATCH_RECORD_* below).
# 5 Queries, the standing, the quota's TOTAL, 4 device reads; 2 puts, finish, metering
BATCH_UNITS_FIXED = {"rru": 10.5, "wru": 4.0}
# feed counter + the group's feed item + its results item + the check of the
# batch's state + the 2 usage counters, each transactional (x2)
BATCH_UNITS_PER_GROUP = {"rru": 0.0, "wru": 12.0}
BATCH_UNITS_PER_ENTRY = {"rru": 1.0, "wru": 4.0}  # its head read; head, revision
# 3 scripts (all locks, their release, the feed lock's release), SET NX +
# GET + SET of the feed lock and hint, RPUSH + EXPIRE of the batch's topic;
# per entry RPUSH + EXPIRE of the feed topic of its seq (one wake-up pipeline).
BATCH_REDIS_FIXED = 8
BATCH_REDIS_PER_ENTRY = 2
# The batch's items (adapters/batches.py), by DynamoDB's size rules, measured
# by tests/deploy/test_call_counts.py as (fixed, per entry) bytes: the
# entries item (written once: 38 KiB at N = 1,000), one results item per
# group (under 1 KiB: priced as small), the state (small while every entry is
# accepted).
BATCH_ENTRIES_BYTES = (66, 39)
BATCH_GROUP_BYTES = (64, 18)
# A group's feed item (S#{user}, every entry's change): 1.2 KiB for 48, so
# 2 KiB-units where counted small as one.
BATCH_FEED_BYTES = (68, 25)
BATCH_STATE_BYTES = 184
# The Queries that read the batch's items before its groups commit (routing,
# under the locks) and after (the end, GET /v1/batches/{id}).
BATCH_RECORD_READS_BEFORE = 2
BATCH_RECORD_READS_AFTER = 2
# Writes to UP#{batch} items: the 2 puts and the finish, and per group its
# results item (transactional: counted twice). The state's check is not a write.
BATCH_RECORD_WRITES_FIXED = 3
BATCH_RECORD_WRITES_PER_GROUP = 2
BATCH_API_CALLS = 2  # POST /v1/batches, GET /v1/batches/{id}?wait=20
BATCH_SQS_REQUESTS = 3  # one S3 event per batch: SendMessage, ReceiveMessage, DeleteMessage
INDEX_WRU_PER_RECORD = 2.0  # the pending index (KEYS_ONLY): one put on create, one delete


def batch_groups(n: int) -> int:
    return -(-n // BATCH_GROUP)


def batch_pages(n: int) -> int:
    return -(-n // BATCH_HEADS_PAGE)


def batch_dynamodb_calls(n: int) -> dict[str, int]:
    """DynamoDB calls for one batch of n new small files."""
    out = dict(BATCH_DYNAMODB_FIXED)
    for op, k in BATCH_DYNAMODB_PER_GROUP.items():
        out[op] = out.get(op, 0) + k * batch_groups(n)
    for op, k in BATCH_DYNAMODB_PER_PAGE.items():
        out[op] = out.get(op, 0) + k * batch_pages(n)
    return out


def batch_units(n: int) -> dict[str, float]:
    """Capacity units for one batch of n, every item counted as small."""
    return {u: BATCH_UNITS_FIXED[u] + BATCH_UNITS_PER_GROUP[u] * batch_groups(n)
            + BATCH_UNITS_PER_ENTRY[u] * n for u in ("rru", "wru")}


def batch_redis_commands(n: int) -> int:
    return BATCH_REDIS_FIXED + BATCH_REDIS_PER_ENTRY * n


def _kib(size: float, unit: int) -> int:
    return max(1, -(-int(size) // unit))


def batch_record_bytes(n: int) -> dict[str, int]:
    """The batch's items when it is finished: state, entries, all groups."""
    (e0, ee), (g0, ge) = BATCH_ENTRIES_BYTES, BATCH_GROUP_BYTES
    return {"state": BATCH_STATE_BYTES, "entries": e0 + ee * n,
            "groups": batch_groups(n) * g0 + ge * n}


def batch_record_units(n: int) -> dict[str, float]:
    """What the batch items' sizes add to batch_units (which counts every
    item as one unit): the entries item's one write at its size, the Queries
    at the bytes they read (before the groups and after), plus the pending
    index (KEYS_ONLY: one put on create, one delete on finish), and each
    group's feed item at its size."""
    size = batch_record_bytes(n)
    before = size["state"] + size["entries"]
    after = before + size["groups"]
    wru = _kib(size["entries"], 1024) - 1 + INDEX_WRU_PER_RECORD
    f0, fe = BATCH_FEED_BYTES
    for k in range(batch_groups(n)):  # each group's feed item, transactional
        entries = min(BATCH_GROUP, n - k * BATCH_GROUP)
        wru += 2 * (_kib(f0 + fe * entries, 1024) - 1)
    rru = (BATCH_RECORD_READS_BEFORE * (_kib(before, 4096) - 1)
           + BATCH_RECORD_READS_AFTER * (_kib(after, 4096) - 1))
    return {"rru": float(rru), "wru": float(wru)}


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size by DynamoDB's rules (names + values; numbers about
    1 byte per 2 digits + 1; maps and lists 3 bytes + 1 per element), from
    its wire form ({"S": ...}, {"B": ...})."""
    def value(v: dict[str, Any]) -> int:
        (t, x), = v.items()
        if t in ("S", "B"):
            return len(x.encode() if t == "S" else x if isinstance(x, bytes) else x)
        if t == "N":
            return (len(x.lstrip("-").replace(".", "").strip("0")) + 1) // 2 + 1
        if t in ("BOOL", "NULL"):
            return 1
        if t == "M":
            return 3 + sum(len(k) + value(w) + 1 for k, w in x.items())
        if t == "L":
            return 3 + sum(value(w) + 1 for w in x)
        return sum(len(w) for w in x)  # sets
    return sum(len(k) + value(v) for k, v in item.items())


def capacity_units(operation: str, params: dict[str, Any]) -> tuple[float, float]:
    """(read, write) request units one DynamoDB call consumes, for items
    under 4 KiB read and 1 KiB written (Sealsync's items are ids and counters;
    an upload record grows 32 bytes per chunk)."""
    if operation == "GetItem":
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation == "Query":
        return (1.0 if params.get("ConsistentRead") else 0.5), 0.0
    if operation == "BatchGetItem":
        return sum((1.0 if t.get("ConsistentRead") else 0.5) * len(t["Keys"])
                   for t in params["RequestItems"].values()), 0.0
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 0.0, 1.0
    if operation == "BatchWriteItem":
        return 0.0, float(sum(len(v) for v in params["RequestItems"].values()))
    if operation == "TransactWriteItems":
        return 0.0, 2.0 * len(params["TransactItems"])
    raise ValueError(f"no capacity rule for {operation}")
