"""DynamoDB for batches: the batch record, heads read in bulk, and the
fenced commit of one group of accepted entries.

  UP#{batch}  UP   the batch record: kind "batch", user, device, the entries
                   packed (core.batch.pack_entries), status, and one result
                   attribute `r{i}` per decided entry; TTL `expires_at`; in
                   the sweeper's pending index until finished

Heads, revisions and feed entries are the items of adapters/meta.py; a
batch-committed version also carries `moff`/`mlen`, its manifest's range in
the bundle, and `upload` = the batch id.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ..core.batch import FINISHED, BatchRecord, EntryResult, pack_entries, unpack_entries
from ..core.decide import PENDING
from ..core.records import Version
from .meta import FenceLost, Meta, _pack, ddb_item, ddb_plain
from .usage import commit_actions

RESULTS_PER_UPDATE = 40  # an expression may be at most 4 KB


def _result_item(r: EntryResult) -> dict[str, Any]:
    fields = {"s": r.status, "rev": r.revision, "seq": r.seq, "win": r.winner_revision,
              "why": r.reason}
    return {k: v for k, v in fields.items() if v is not None}


def _result(raw: Mapping[str, Any]) -> EntryResult:
    def num(key: str) -> int | None:
        return None if raw.get(key) is None else int(raw[key])

    return EntryResult(str(raw["s"]), revision=num("rev"), seq=num("seq"),
                       winner_revision=num("win"), reason=raw.get("why"))


class Batches:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    # -- the record ----------------------------------------------------------------
    def create(self, rec: BatchRecord, expires_at: int) -> None:
        ents, chunks = pack_entries(rec.entries)
        item = ddb_item(pk=f"UP#{rec.batch_id}", sk="UP", kind="batch", user=rec.user_id,
                        device=rec.device_id, ents=ents, chunks=chunks, n=len(rec.entries),
                        status=PENDING, created=rec.created, expires_at=expires_at,
                        gpk=f"P#{rec.batch_id[0]}", gsk=f"{rec.created:012d}")
        self.db.put_item(TableName=self.table, Item=item,
                         ConditionExpression="attribute_not_exists(pk)")

    def get(self, batch_id: str) -> BatchRecord | None:
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"UP#{batch_id}", sk="UP"))
        if "Item" not in got:
            return None
        it = ddb_plain(got["Item"])
        if it.get("kind") != "batch":
            return None
        entries = unpack_entries(bytes(getattr(it["ents"], "value", it["ents"])),
                                 bytes(getattr(it.get("chunks"), "value", it.get("chunks"))
                                       or b""))
        results = {i: _result(it[f"r{i}"]) for i in range(len(entries)) if f"r{i}" in it}
        return BatchRecord(batch_id, it["user"], it["device"], entries, it["status"],
                           int(it["created"]), results)

    def write_results(self, batch_id: str, results: Mapping[int, EntryResult]) -> None:
        """Conflicts and rejections, each written once: a result already
        there (another handler's) stays as it is."""
        order = sorted(results)
        for at in range(0, len(order), RESULTS_PER_UPDATE):
            part = {i: results[i] for i in order[at:at + RESULTS_PER_UPDATE]}
            try:
                self.db.update_item(**self._results_update(batch_id, part))
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                for i, r in part.items():  # some were written meanwhile: one by one
                    try:
                        self.db.update_item(**self._results_update(batch_id, {i: r}))
                    except ClientError as one:
                        if one.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise

    def _results_update(self, batch_id: str, part: Mapping[int, EntryResult]) -> dict[str, Any]:
        names = {f"#r{i}": f"r{i}" for i in part}
        return {
            "TableName": self.table, "Key": ddb_item(pk=f"UP#{batch_id}", sk="UP"),
            "UpdateExpression": "SET " + ", ".join(f"#r{i} = :r{i}" for i in part),
            "ConditionExpression": " AND ".join(
                ["#status = :pending", *(f"attribute_not_exists(#r{i})" for i in part)]),
            "ExpressionAttributeNames": {**names, "#status": "status"},
            "ExpressionAttributeValues": {
                **ddb_item(**{f":r{i}": _result_item(r) for i, r in part.items()}),
                **ddb_item(**{":pending": PENDING})},
        }

    def finish(self, batch_id: str, now: int) -> bool:
        """Mark the batch finished (every entry has its result: results are
        never removed, so one read that saw them all is enough) and take it
        out of the pending index. True if this call did; twice is harmless."""
        try:
            self.db.update_item(
                TableName=self.table, Key=ddb_item(pk=f"UP#{batch_id}", sk="UP"),
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
                     offsets: Sequence[int], now: int) -> None:
        """ONE TransactWriteItems: per entry its head (fenced on its base),
        revision and feed entry; the feed counter (fenced on `last`, moved to
        the group's last seq); the entries' results in the batch record
        (fenced: still pending, no result yet). Raises FenceLost if anything
        moved: nothing is written then."""
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
                {"Put": {"TableName": self.table, **new,
                         "Item": ddb_item(pk=f"S#{user}", sk=f"{seqs[i]:016d}", file=e.file_id,
                                          rev=revision, deleted=e.tombstone)}},
            ]
            results[i] = EntryResult("accepted", revision=revision, seq=seqs[i])
        seq_cond = (new if last == 0 else
                    {"ConditionExpression": "seq = :last",
                     "ExpressionAttributeValues": ddb_item(**{":last": last})})
        items.append({"Put": {"TableName": self.table, **seq_cond,
                              "Item": ddb_item(pk=f"S#{user}", sk="SEQ",
                                               seq=max(seqs.values()))}})
        items.append({"Update": self._results_update(rec.batch_id, results)})
        items += commit_actions(self.table, user, now,  # metering, exactly once
                                [rec.entries[i].size for i in revisions])
        try:
            self.db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            raise FenceLost(f"{user}/batch {rec.batch_id}") from exc
