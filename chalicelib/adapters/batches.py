"""DynamoDB for batches: the batch record, heads read in bulk, and the
fenced commit of one group of accepted entries.

  UP#{batch}  UP    the batch's state: kind "batch", user, device, n, status,
                    and one result attribute `r{i}` per conflict or rejection
                    (written once); TTL `expires_at`; in the sweeper's
                    pending index until finished. Small whatever the batch.
  UP#{batch}  E     its entries packed (core.batch.pack_entries), written
                    once before the state and never changed
  UP#{batch}  G#{i} the accepted results of one committed group (first entry
                    index i), created by the group's own transaction:
                    (index, revision, seq) packed, 18 bytes an entry

The split is what keeps a batch cheap: a group's transaction writes 0.6 KB
of results instead of rewriting a record that grows to 66 KB (2 WRU a group
instead of up to 130), and reads one small state item as its condition.
One consistent Query on `UP#{batch}` reads all of it.

Heads, revisions and feed entries are the items of adapters/meta.py; a
batch-committed version also carries `moff`/`mlen`, its manifest's range in
the bundle, and `upload` = the batch id.
"""
from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..core.batch import (
    FINISHED,
    BatchRecord,
    EntryResult,
    pack_changes,
    pack_entries,
    unpack_entries,
)
from ..core.decide import ACCEPTED, PENDING
from ..core.records import UploadRecord, Version
from .meta import FenceLost, Meta, _pack, ddb_item, ddb_plain
from .usage import commit_actions

RESULTS_PER_UPDATE = 40  # an expression may be at most 4 KB
# A reason is the server's own sentence; bounded so that every entry of the
# largest batch rejected still fits the state item (tests/unit/test_batch_store.py).
MAX_REASON = 200
STATE_SK, ENTRIES_SK, GROUP_SK = "UP", "E", "G#"
_GROUP_RESULT = struct.Struct(">HQQ")  # entry index, revision, feed seq


def _result_item(r: EntryResult) -> dict[str, Any]:
    fields = {"s": r.status, "rev": r.revision, "seq": r.seq, "win": r.winner_revision,
              "why": None if r.reason is None else r.reason[:MAX_REASON]}
    return {k: v for k, v in fields.items() if v is not None}


def _result(raw: Mapping[str, Any]) -> EntryResult:
    def num(key: str) -> int | None:
        return None if raw.get(key) is None else int(raw[key])

    return EntryResult(str(raw["s"]), revision=num("rev"), seq=num("seq"),
                       winner_revision=num("win"), reason=raw.get("why"))


def _binary(value: Any) -> bytes:
    return bytes(getattr(value, "value", value) or b"")


def pack_group_results(results: Mapping[int, EntryResult]) -> bytes:
    return b"".join(_GROUP_RESULT.pack(i, r.revision or 0, r.seq or 0)
                    for i, r in sorted(results.items()))


def unpack_group_results(raw: bytes) -> dict[int, EntryResult]:
    return {i: EntryResult(ACCEPTED, revision=rev, seq=seq)
            for i, rev, seq in _GROUP_RESULT.iter_unpack(raw)}


class Batches:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    def _key(self, batch_id: str, sk: str) -> dict[str, Any]:
        return ddb_item(pk=f"UP#{batch_id}", sk=sk)

    # -- the record ----------------------------------------------------------------
    def create(self, rec: BatchRecord, expires_at: int) -> None:
        """The entries, then the state: whoever finds the state finds the
        entries. Two plain puts (a transaction would bill them twice)."""
        ents, chunks = pack_entries(rec.entries)
        new = "attribute_not_exists(pk)"
        self.db.put_item(TableName=self.table, ConditionExpression=new,
                         Item=ddb_item(pk=f"UP#{rec.batch_id}", sk=ENTRIES_SK, ents=ents,
                                       chunks=chunks, expires_at=expires_at))
        self.db.put_item(TableName=self.table, ConditionExpression=new, Item=ddb_item(
            pk=f"UP#{rec.batch_id}", sk=STATE_SK, kind="batch", user=rec.user_id,
            device=rec.device_id, n=len(rec.entries), status=PENDING, created=rec.created,
            expires_at=expires_at, gpk=f"P#{rec.batch_id[0]}", gsk=f"{rec.created:012d}"))

    def get(self, batch_id: str) -> BatchRecord | None:
        found = self.get_record(batch_id)
        return found if isinstance(found, BatchRecord) else None

    def get_record(self, upload_id: str) -> BatchRecord | UploadRecord | None:
        """The batch or single upload staged under this id, in ONE consistent
        Query (the state, the entries and every group's results together)."""
        items: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": ddb_item(**{":pk": f"UP#{upload_id}"})}
        while True:
            got = self.db.query(**request)
            for raw in got.get("Items", []):
                it = ddb_plain(raw)
                items[it["sk"]] = it
            if "LastEvaluatedKey" not in got:
                break
            request["ExclusiveStartKey"] = got["LastEvaluatedKey"]
        state = items.get(STATE_SK)
        if state is None:
            return None
        if state.get("kind") != "batch":
            return Meta._upload(upload_id, state)
        if ENTRIES_SK not in items:
            return None
        entries = unpack_entries(_binary(items[ENTRIES_SK]["ents"]),
                                 _binary(items[ENTRIES_SK].get("chunks")))
        results = {i: _result(state[f"r{i}"]) for i in range(len(entries))
                   if f"r{i}" in state}
        for sk, it in items.items():
            if sk.startswith(GROUP_SK):  # an accepted result is final, whatever else
                results.update(unpack_group_results(_binary(it["res"])))
        return BatchRecord(batch_id=upload_id, user_id=state["user"],
                           device_id=state["device"], entries=entries,
                           status=state["status"], created=int(state["created"]),
                           results=results)

    def write_results(self, rec: BatchRecord, results: Mapping[int, EntryResult]) -> None:
        """Conflicts and rejections, each written once, and never for an
        entry some run accepted: each is written with a check that its
        file's revision base + 1 (the only one accepting it can create;
        revisions are never removed) is not this batch's. A result already
        there (another handler's) stays as it is."""
        order = sorted(results)
        for at in range(0, len(order), RESULTS_PER_UPDATE):
            part = {i: results[i] for i in order[at:at + RESULTS_PER_UPDATE]}
            try:
                self._write_results(rec, part)
            except FenceLost:
                for i, r in part.items():  # some were written meanwhile: one by one
                    with contextlib.suppress(FenceLost):  # written, or accepted
                        self._write_results(rec, {i: r})

    def _write_results(self, rec: BatchRecord, part: Mapping[int, EntryResult]) -> None:
        checks = []
        for i in part:
            e = rec.entries[i]
            checks.append({"ConditionCheck": {
                "TableName": self.table,
                "Key": ddb_item(pk=f"R#{rec.user_id}#{e.file_id}",
                                sk=f"{e.base_revision + 1:012d}"),
                "ConditionExpression": "attribute_not_exists(pk) OR #up <> :batch",
                "ExpressionAttributeNames": {"#up": "upload"},
                "ExpressionAttributeValues": ddb_item(**{":batch": rec.batch_id})}})
        names = {f"#r{i}": f"r{i}" for i in part}
        update = {
            "TableName": self.table, "Key": self._key(rec.batch_id, STATE_SK),
            "UpdateExpression": "SET " + ", ".join(f"#r{i} = :r{i}" for i in part),
            "ConditionExpression": " AND ".join(
                ["#status = :pending", *(f"attribute_not_exists(#r{i})" for i in part)]),
            "ExpressionAttributeNames": {**names, "#status": "status"},
            "ExpressionAttributeValues": {
                **ddb_item(**{f":r{i}": _result_item(r) for i, r in part.items()}),
                **ddb_item(**{":pending": PENDING})},
        }
        self._transact([{"Update": update}, *checks], f"results of batch {rec.batch_id}")

    def _transact(self, items: list[dict[str, Any]], what: str) -> None:
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            raise FenceLost(what) from exc

    def finish(self, batch_id: str, now: int) -> bool:
        """Mark the batch finished (every entry has its result: results are
        never removed, so one read that saw them all is enough) and take it
        out of the pending index. True if this call did; twice is harmless."""
        try:
            self.db.update_item(
                TableName=self.table, Key=self._key(batch_id, STATE_SK),
                UpdateExpression="SET #status = :done, finished = :now REMOVE gpk, gsk",
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=ddb_item(**{":done": FINISHED, ":now": now,
                                                      ":pending": PENDING}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True

    # -- heads ----------------------------------------------------------------------
    def heads(self, user_id: str, file_ids: Iterable[str]) -> dict[str, Version]:
        """The heads of these files (absent: no file), strongly consistent,
        100 keys per BatchGetItem."""
        wanted = sorted(set(file_ids))
        found: dict[str, Version] = {}
        for at in range(0, len(wanted), 100):
            keys = [ddb_item(pk=f"F#{user_id}", sk=f) for f in wanted[at:at + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                for raw in got["Responses"].get(self.table, []):
                    it = ddb_plain(raw)
                    found[it["sk"]] = Meta._version(it["sk"], it)
                request = got.get("UnprocessedKeys") or {}
        return found

    # -- the fenced commit of one group ------------------------------------------------
    def commit_group(self, rec: BatchRecord, revisions: Mapping[int, int],
                     seqs: Mapping[int, int], last: int, bundle_key: str,
                     offsets: Sequence[int], now: int, expires_at: int = 0,
                     gc_gen: int | None = None) -> None:
        """ONE TransactWriteItems: per entry its head (fenced on its base) and
        revision; the feed counter (fenced on `last`, moved to the group's
        last seq); one feed item holding every entry's change; the group's
        results item (created: a second
        run planning the same group loses); and a check that the batch is
        pending and none of these entries has a conflict or rejection.
        Raises FenceLost if anything moved: nothing is written then."""
        user = rec.user_id
        items: list[dict[str, Any]] = []
        new = {"ConditionExpression": "attribute_not_exists(pk)"}
        results: dict[int, EntryResult] = {}
        for i, revision in revisions.items():
            e = rec.entries[i]
            version = {"rev": revision, "deleted": e.tombstone, "mkey": bundle_key,
                       "moff": offsets[i], "mlen": e.manifest_size, "size": e.size,
                       "chunks": _pack(e.chunk_ids), "upload": rec.batch_id,
                       "device": rec.device_id, "committed": now}
            head_cond = (new if e.base_revision == 0 else
                         {"ConditionExpression": "rev = :base",
                          "ExpressionAttributeValues": ddb_item(**{":base": e.base_revision})})
            items += [
                {"Put": {"TableName": self.table, **head_cond,
                         "Item": ddb_item(pk=f"F#{user}", sk=e.file_id, **version)}},
                {"Put": {"TableName": self.table, **new,
                         "Item": ddb_item(pk=f"R#{user}#{e.file_id}", sk=f"{revision:012d}",
                                          **version)}},
            ]
            results[i] = EntryResult(ACCEPTED, revision=revision, seq=seqs[i])
        seq_cond = (new if last == 0 else
                    {"ConditionExpression": "seq = :last",
                     "ExpressionAttributeValues": ddb_item(**{":last": last})})
        first, top = min(seqs.values()), max(seqs.values())
        order = sorted(revisions, key=lambda i: seqs[i])
        assert [seqs[i] for i in order] == list(range(first, top + 1)), "seqs must be a range"
        items.append({"Put": {"TableName": self.table, **seq_cond,
                              "Item": ddb_item(pk=f"S#{user}", sk="SEQ", seq=top)}})
        # ONE feed item for the group's changes, keyed by its last seq (a reader
        # after any seq of the range finds it: meta.changes).
        items.append({"Put": {"TableName": self.table, **new, "Item": ddb_item(
            pk=f"S#{user}", sk=f"{top:016d}", first=first, changes=pack_changes(
                [(rec.entries[i].file_id, revisions[i], rec.entries[i].tombstone)
                 for i in order]))}})
        extra = {"expires_at": expires_at} if expires_at else {}
        items.append({"Put": {"TableName": self.table, **new, "Item": ddb_item(
            pk=f"UP#{rec.batch_id}", sk=f"{GROUP_SK}{min(results):04d}",
            res=pack_group_results(results), **extra)}})
        items.append({"ConditionCheck": {
            "TableName": self.table, "Key": self._key(rec.batch_id, STATE_SK),
            "ConditionExpression": " AND ".join(
                ["#status = :pending", *(f"attribute_not_exists(#r{i})" for i in results)]),
            "ExpressionAttributeNames": {"#status": "status",
                                         **{f"#r{i}": f"r{i}" for i in results}},
            "ExpressionAttributeValues": ddb_item(**{":pending": PENDING})}})
        items += commit_actions(self.table, user, now,  # metering, exactly once; gc fence
                                [rec.entries[i].size for i in revisions], gc_gen)
        self._transact(items, f"{user}/batch {rec.batch_id}")
