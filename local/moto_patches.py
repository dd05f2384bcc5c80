"""The patches that make moto behave like the AWS services the stack
stands in for, and fast enough to sync with: DynamoDB answers one request
at a time and rolls a cancelled transaction back without copying whole
tables, dispatch and condition parsing are cached, a query reads one
partition, SNS endpoints keep their user data, and a presigned PUT checks
the headers it was signed with. `patch_moto` applies them all; `moto.py`
runs the patched server.
"""
from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any

_dynamodb_serialized = False
# Held by every DynamoDB request once serialized; a snapshot (local/persist.py)
# holds it too, so it reads the tables between two requests.
DYNAMODB_LOCK = threading.RLock()


def serialize_moto_dynamodb() -> None:
    """Make moto's DynamoDB execute one request at a time, as DynamoDB does.

    moto is not safe under concurrent requests: a cancelled
    TransactWriteItems rolls back by restoring a deep copy of the whole table
    taken when it started, silently reverting writes other requests made
    meanwhile. Serializing requests (never the steps between them) keeps
    every race the pipeline can meet in real DynamoDB."""
    global _dynamodb_serialized
    if _dynamodb_serialized:
        return
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action

    def serialized(self: Any) -> Any:
        with DYNAMODB_LOCK:
            return call_action(self)

    DynamoHandler.call_action = serialized  # type: ignore[method-assign]
    _dynamodb_serialized = True


class _NoTableCopy:
    """Stands in for the `copy` module inside moto.dynamodb.models: a Table is
    returned as is (the whole-table backup becomes free), anything else is
    deep-copied as before."""

    @staticmethod
    def deepcopy(x: Any, memo: Any = None) -> Any:
        from moto.dynamodb.models.table import Table

        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


def _touched(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(table, hash, range, deep copy of the item or None) for each item a
    transaction names; an op whose table or key is malformed is skipped, as
    it cannot write anything."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    saved: list[tuple[Any, ...]] = []
    for entry in transact_items:
        try:
            op_type, op = next(iter(entry.items()))
            table = backend.tables[op["TableName"]]
            key = op["Item"] if op_type == "Put" else op["Key"]
            h = DynamoType(key[table.hash_key_attr])
            r = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
            current = table.get_item(h, r)
        except Exception:  # noqa: BLE001 - moto reports the bad op itself
            continue
        saved.append((table, h, r, copy.deepcopy(current)))
    return saved


def _restore(saved: list[tuple[Any, ...]]) -> None:
    """Put every touched item back as it was (newest first, so a key named
    twice ends at its original value)."""
    for table, h, r, item in reversed(saved):
        if r is None:
            if item is None:
                table.items.pop(h, None)
            else:
                table.items[h] = item
        elif item is None:
            by_range = table.items.get(h)
            if by_range is not None:
                by_range.pop(r, None)
                if not by_range:
                    table.items.pop(h, None)
        else:
            table.items[h][r] = item


def snapshot_moto_transactions() -> Callable[[], None]:
    """Make moto's TransactWriteItems snapshot only the items it touches.

    moto 5.2.5 deep-copies every table a transaction names before running
    it, to roll back on cancellation, so each commit costs O(table size):
    ~330 ms at 1,300 items, and 10,000 small files would take hours. Here the
    backup is a deep copy of the named items alone, restored on any failure:
    the same all-or-nothing result, in O(items in the transaction). (It also
    no longer reverts writes other requests made to other items meanwhile.)
    Returns a function that undoes the patch (benchmarks compare both)."""
    from moto.dynamodb import models

    if getattr(models.DynamoDBBackend.transact_write_items, "_sealsync", False):
        return lambda: None
    original = models.DynamoDBBackend.transact_write_items
    real_copy = models.copy  # type: ignore[attr-defined]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = _touched(self, transact_items)
        try:
            original(self, transact_items)
        except Exception:
            _restore(saved)
            raise

    transact_write_items._sealsync = True  # type: ignore[attr-defined]
    models.copy = _NoTableCopy  # type: ignore[attr-defined,assignment]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        models.copy = real_copy  # type: ignore[attr-defined]
        models.DynamoDBBackend.transact_write_items = original  # type: ignore[method-assign]

    return undo


MAX_HOSTS_REMEMBERED = 256


def cache_moto_dispatch() -> None:
    """Remember which backend serves each Host.

    moto's server finds the backend for every request by listing its own
    package directory (a stat per service) and then trying each service's
    URL regexes in turn: ~0.5 ms of CPU under the GIL per request, a sixth
    of the local stack's CPU when syncing small files. The answer for a
    host never changes, so it is computed once."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication as App

    find = App.get_backend_for_host
    if getattr(find, "_sealsync", False):
        return
    known: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        try:
            return known[host]
        except KeyError:
            backend = find(self, host)
            if len(known) < MAX_HOSTS_REMEMBERED:  # Host is the caller's to choose
                known[host] = backend
            return backend

    get_backend_for_host._sealsync = True  # type: ignore[attr-defined]
    App.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


MAX_CONDITIONS_REMEMBERED = 4096


def cache_moto_conditions() -> None:
    """Parse each condition expression once.

    moto parses a request's ConditionExpression for every item it checks (a
    lexer and parser in Python): ~0.3 ms each, a third of a batch's commit
    time in the local stack, where a batch of 1,000 files checks 3,000
    conditions, nearly all `attribute_not_exists(pk)`. The parse depends
    only on the expression, its names and its values, and evaluating it
    against an item keeps no state, so it is remembered by those three
    (values that are not JSON, like bytes, are parsed as before)."""
    import json

    from moto.dynamodb import models
    from moto.dynamodb.models import table

    parse = getattr(table, "get_filter_expression")  # noqa: B009 - not re-exported
    if getattr(parse, "_sealsync", False):
        return
    known: dict[tuple[str, str, str], Any] = {}

    def get_filter_expression(expr: Any, names: Any, values: Any) -> Any:
        try:
            key = (str(expr), json.dumps(names, sort_keys=True),
                   json.dumps(values, sort_keys=True))
        except (TypeError, ValueError):
            return parse(expr, names, values)
        try:
            return known[key]
        except KeyError:
            op = parse(expr, names, values)
            if len(known) < MAX_CONDITIONS_REMEMBERED:  # values are the caller's
                known[key] = op
            return op

    get_filter_expression._sealsync = True  # type: ignore[attr-defined]
    models.get_filter_expression = get_filter_expression  # type: ignore[attr-defined]
    table.get_filter_expression = get_filter_expression  # type: ignore[attr-defined]


_partition = threading.local()
_ANY_PARTITION = object()  # an index query: every item, unsorted


def query_one_partition() -> Callable[[], None]:
    """Make a table query read only the partition it names.

    moto 5.2.5 answers a query on a table's own key by sorting EVERY item in
    the table and then keeping those with the hash key asked for: O(table)
    per query, so each commit's query slowed as the table filled (~10 ms at
    10,000 items, and growing). DynamoDB reads only the one partition; so
    does this. An index query still reads every item (moto keeps no index),
    but unsorted: it sorts what matches by the index key and the table key
    itself, a total order, so the table-wide sort bought nothing. That sort
    was a sweep's cost: 16 shard queries, each sorting every item under the
    DynamoDB lock, stalled every commit for seconds at 10,000 files.
    Returns a function that restores moto's own query (whether or not this
    call installed the patch)."""
    from moto.dynamodb.models.table import Table

    query, all_items = getattr(Table.query, "_sealsync", (Table.query, Table.all_items))

    def partition_items(self: Any) -> Any:
        hash_key = getattr(_partition, "hash_key", None)
        if hash_key is None:
            return all_items(self)
        if hash_key is _ANY_PARTITION:
            if not self.range_key_attr:
                return list(self.items.values())
            return [item for found in self.items.values() for item in found.values()]
        found = self.items.get(hash_key)
        if found is None:
            return []
        if not self.range_key_attr:
            return [found]
        return list(found.values())  # query sorts its results itself

    def one_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if hash_key is None:
            return query(self, hash_key, *args, **kwargs)
        _partition.hash_key = _ANY_PARTITION if index_name else hash_key
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _partition.hash_key = None

    one_partition._sealsync = (query, all_items)  # type: ignore[attr-defined]
    Table.query = one_partition  # type: ignore[method-assign]
    Table.all_items = partition_items  # type: ignore[method-assign]

    def undo() -> None:
        Table.query, Table.all_items = query, all_items  # type: ignore[method-assign]

    return undo


def sns_endpoint_user_data() -> None:
    """GetEndpointAttributes names the endpoint's CustomUserData, as AWS
    does (moto leaves it out); the push adapter checks whose endpoint it is."""
    from moto.sns.models import PlatformEndpoint

    init = PlatformEndpoint.__init__
    if getattr(init, "_sealsync", False):
        return

    def with_user_data(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if self.custom_user_data is not None:
            self.attributes.setdefault("CustomUserData", self.custom_user_data)

    with_user_data._sealsync = True  # type: ignore[attr-defined]
    PlatformEndpoint.__init__ = with_user_data  # type: ignore[method-assign]


def presigned_put_headers() -> None:
    """As S3, for a presigned PUT: every header its URL signed must be sent
    (403 SignatureDoesNotMatch), and a signed `x-amz-checksum-sha256` must
    be the body's (400 BadDigest).

    moto verifies no presigned signature, so without this the local stack
    stores what S3 refuses: a PUT that drops `If-None-Match: *` overwrites a
    staging object (docs/SECURITY.md, "Abuse: storage"). What still passes
    here: a signed header sent with ANOTHER value, e.g. another
    Content-Length or the digest of other bytes (only the signature catches
    that, and moto cannot check it without the signer's secret)."""
    import base64
    import hashlib

    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    put = S3Response._key_response_put
    if getattr(put, "_sealsync", False):
        return

    def checked_put(self: Any, query: dict[str, Any], key_name: str) -> Any:
        signed = (query.get("X-Amz-SignedHeaders") or [""])[0].lower().split(";")
        if query.get("X-Amz-Signature") and signed != [""]:
            missing = sorted(h for h in signed if h != "host" and self.headers.get(h) is None)
            if missing:
                raise _SignatureDoesNotMatch(f"signed header(s) not sent: {', '.join(missing)}")
            if "x-amz-checksum-sha256" in signed:  # hashed only then: a pack is 8 MiB
                body = self.raw_body if isinstance(self.raw_body, bytes) else b""
                digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
                if self.headers.get("x-amz-checksum-sha256") != digest:
                    raise _BadDigest("The SHA256 you specified did not match the "
                                     "calculated checksum.")
        return put(self, query, key_name)

    class _SignatureDoesNotMatch(S3ClientError):
        code = "SignatureDoesNotMatch"

        def __init__(self, message: str) -> None:
            super().__init__(message)

    class _BadDigest(S3ClientError):
        code = "BadDigest"

        def __init__(self, message: str) -> None:
            super().__init__(message)

    checked_put._sealsync = True  # type: ignore[attr-defined]
    S3Response._key_response_put = checked_put  # type: ignore[method-assign]


def patch_moto() -> None:
    """All the patches above; idempotent."""
    serialize_moto_dynamodb()
    snapshot_moto_transactions()
    cache_moto_dispatch()
    cache_moto_conditions()
    query_one_partition()
    sns_endpoint_user_data()
    presigned_put_headers()
