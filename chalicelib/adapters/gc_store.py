"""DynamoDB for garbage collection (docs/DESIGN.md "Pack and chunk lifecycle";
the rules are core/gc.py):

  G#{user}  GC       the user's collection state: `gen`, phase, cursors, the
                     doomed and rescued sets (binary ids). A commit that
                     relies on a chunk the index does not know reads it first
                     (`fence`)
  G#{user}  FULL     `at`: the retention job forgot chunks in the index
                     (chalicelib/retention.py), so the user's next cycle
                     lists every object, not only those new since the last
  K#{user}  {pack}   `chunks`: a binary set of every chunk ever located in the
                     pack (written before the locations, so it is a superset)
  U#{user}  TOTAL    also carries `gc`, the same generation as `G#.gen`: the
                     item every commit's transaction already updates, so the
                     fence costs a condition, not an action (usage.commit_actions)

Only the doom transaction moves the generation, and it moves both copies.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ..core.gc import GcState, pack_ids, packed
from ..core.packs import Location
from .ddb_batch import each
from .meta import ddb_item, ddb_plain

_STATE_SK = "GC"
_FULL_SK = "FULL"


def _bytes(raw: Any) -> bytes:
    return bytes(getattr(raw, "value", raw) or b"")


def _etag_fields(state: GcState) -> dict[str, bytes]:
    """The doomed objects' ETags, 16 bytes each in the ids' sorted order."""
    tags = dict(state.etags)
    return {"de": b"".join(bytes.fromhex(tags[c]) for c in sorted(state.doomed_chunks)),
            "pe": b"".join(bytes.fromhex(tags[p]) for p in sorted(state.doomed_packs))}


def _etags(it: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for ids_field, tags_field, width in (("dc", "de", 32), ("dp", "pe", 16)):
        ids, tags = _bytes(it.get(ids_field)), _bytes(it.get(tags_field))
        for k in range(len(ids) // width):
            out.append((ids[k * width:(k + 1) * width].hex(), tags[k * 16:(k + 1) * 16].hex()))
    return tuple(sorted(out))


def _watch_fields(state: GcState) -> dict[str, Any]:
    if state.watch is None:
        return {}
    return {"wok": True, "wc": b"".join(bytes.fromhex(c) for c, _ in state.watch),
            "wp": b"".join(bytes.fromhex(p) for _, p in state.watch)}


def _watch(it: dict[str, Any]) -> tuple[tuple[str, str], ...] | None:
    if not it.get("wok"):
        return None
    chunks, packs = _bytes(it.get("wc")), _bytes(it.get("wp"))
    return tuple((chunks[k * 32:(k + 1) * 32].hex(), packs[k * 16:(k + 1) * 16].hex())
                 for k in range(len(chunks) // 32))


def _retired(raw: bytes) -> tuple[tuple[str, int], ...]:
    return tuple((raw[k:k + 16].hex(), int.from_bytes(raw[k + 16:k + 24], "big"))
                 for k in range(0, len(raw), 24))


def _after(pk: str, after: str) -> dict[str, Any]:
    """A Query's key condition: the partition, past `after` if any (an empty
    string is not a valid key value)."""
    if not after:
        return {"KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": ddb_item(**{":p": pk})}
    return {"KeyConditionExpression": "pk = :p AND sk > :a",
            "ExpressionAttributeValues": ddb_item(**{":p": pk, ":a": after})}


class StateMoved(Exception):
    """Another collector run moved this user's state first."""


class GcStore:
    def __init__(self, client: Any, table: str) -> None:
        self.db = client
        self.table = table

    # -- the state and the fence ------------------------------------------------
    def state(self, user_id: str) -> tuple[GcState, int]:
        """The user's state and its version (for the conditional write)."""
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"G#{user_id}", sk=_STATE_SK))
        if "Item" not in got:
            return GcState(), 0
        it = ddb_plain(got["Item"])
        return GcState(
            gen=int(it.get("gen", 0)), phase=it.get("phase", "index"),
            listing=it.get("listing", "chunks"), cursor=it.get("cursor", ""),
            doomed_chunks=pack_ids(_bytes(it.get("dc")), 32),
            doomed_packs=pack_ids(_bytes(it.get("dp")), 16),
            rescued_chunks=pack_ids(_bytes(it.get("rc")), 32),
            rescued_packs=pack_ids(_bytes(it.get("rp")), 16),
            scan_cursor=it.get("scur", ""),
            etags=_etags(it), since=float(it.get("since", 0)), upto=float(it.get("upto", 0)),
            cycles=int(it.get("cycles", 0)), watch=_watch(it),
            retired=_retired(_bytes(it.get("ret")))), int(it.get("ver", 0))

    def fence(self, user_id: str) -> GcState:
        """Read BEFORE checking chunks the index does not know (pack_commit.py)."""
        return self.state(user_id)[0]

    def _put(self, user_id: str, state: GcState, version: int) -> dict[str, Any]:
        cond = ({"ConditionExpression": "attribute_not_exists(pk)"} if version == 0 else
                {"ConditionExpression": "ver = :v",
                 "ExpressionAttributeValues": ddb_item(**{":v": version})})
        item = ddb_item(pk=f"G#{user_id}", sk=_STATE_SK, ver=version + 1, gen=state.gen,
                        phase=state.phase, listing=state.listing, cursor=state.cursor,
                        dc=packed(state.doomed_chunks), dp=packed(state.doomed_packs),
                        rc=packed(state.rescued_chunks), rp=packed(state.rescued_packs),
                        scur=state.scan_cursor, since=Decimal(str(state.since)),
                        upto=Decimal(str(state.upto)), cycles=state.cycles,
                        **_etag_fields(state), **_watch_fields(state),
                        ret=b"".join(bytes.fromhex(p) + at.to_bytes(8, "big")
                                     for p, at in state.retired))
        return {"TableName": self.table, "Item": item, **cond}

    def save(self, user_id: str, state: GcState, version: int) -> int:
        """Write the state if nobody moved it since `version`; the new version."""
        try:
            self.db.put_item(**self._put(user_id, state, version))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise StateMoved(user_id) from exc
            raise
        return version + 1

    def doom(self, user_id: str, state: GcState, version: int) -> int:
        """ONE transaction: the state with its new generation and doomed sets,
        and the generation's copy on the usage TOTAL that every commit's
        transaction is conditioned on. After it, no commit can newly
        reference a doomed object."""
        bump = {"Update": {
            "TableName": self.table, "Key": ddb_item(pk=f"U#{user_id}", sk="TOTAL"),
            "UpdateExpression": "SET #gc = :gen",
            "ExpressionAttributeNames": {"#gc": "gc"},
            "ExpressionAttributeValues": ddb_item(**{":gen": state.gen})}}
        try:
            self.db.transact_write_items(TransactItems=[
                {"Put": self._put(user_id, state, version)}, bump])
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise StateMoved(user_id) from exc
            raise
        return version + 1

    # -- a full cycle, asked for by the retention job --------------------------------
    def want_full_cycle(self, user_id: str, now: int) -> None:
        """Old objects may have become garbage (revisions expired): make the
        user's next cycle look at every object."""
        self.db.put_item(TableName=self.table,
                         Item=ddb_item(pk=f"G#{user_id}", sk=_FULL_SK, at=now))

    def full_wanted(self, user_id: str) -> int | None:
        """When a full cycle was asked for (None: not asked)."""
        got = self.db.get_item(TableName=self.table, ConsistentRead=True,
                               Key=ddb_item(pk=f"G#{user_id}", sk=_FULL_SK))
        return int(ddb_plain(got["Item"])["at"]) if "Item" in got else None

    def full_started(self, user_id: str, at: int) -> None:
        """The full cycle asked for at `at` has started: forget the ask,
        unless a later one came meanwhile (that one gets its own cycle)."""
        self._delete_if(ddb_item(pk=f"G#{user_id}", sk=_FULL_SK), "at", at)

    # -- the pack index -----------------------------------------------------------
    def index_packs(self, user_id: str, chunks_by_pack: Mapping[str, Iterable[str]]) -> None:
        """Add chunks to each pack's index (one UpdateItem per pack, several at
        once; ADD on a binary set is idempotent and never drops what another
        writer added)."""
        def add(pack_chunks: tuple[str, list[str]]) -> None:
            pack, ids = pack_chunks
            self.db.update_item(
                TableName=self.table, Key=ddb_item(pk=f"K#{user_id}", sk=pack),
                UpdateExpression="ADD #c :c", ExpressionAttributeNames={"#c": "chunks"},
                ExpressionAttributeValues={":c": {"BS": [bytes.fromhex(c) for c in ids]}})

        todo = [(pack, sorted(set(chunks))) for pack, chunks in sorted(chunks_by_pack.items())]
        each(add, [(pack, ids) for pack, ids in todo if ids])

    def pack_index(self, user_id: str, pack_ids_: Iterable[str]) -> dict[str, frozenset[str]]:
        """Each pack's indexed chunks (an absent pack: none)."""
        wanted = sorted(set(pack_ids_))
        out: dict[str, frozenset[str]] = {p: frozenset() for p in wanted}
        for i in range(0, len(wanted), 100):
            keys = [ddb_item(pk=f"K#{user_id}", sk=p) for p in wanted[i:i + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                got = self.db.batch_get_item(RequestItems=request)
                for raw in got["Responses"].get(self.table, []):
                    sk = raw["sk"]["S"]
                    out[sk] = frozenset(bytes(b).hex() for b in raw.get("chunks", {})
                                        .get("BS", []))
                request = got.get("UnprocessedKeys") or {}
        return out

    def forget_pack(self, user_id: str, pack_id: str) -> None:
        self.db.delete_item(TableName=self.table, Key=ddb_item(pk=f"K#{user_id}", sk=pack_id))

    def forget_location(self, user_id: str, chunk_id: str, pack_id: str) -> bool:
        """Delete a chunk's location if it still points at `pack_id` (a later
        batch may have located the chunk in another pack: that one stays)."""
        return self._delete_if(ddb_item(pk=f"L#{user_id}", sk=chunk_id), "pack", pack_id)

    def _delete_if(self, key: dict[str, Any], field: str, value: object) -> bool:
        """Delete the item at `key` if its `field` still equals `value`;
        False when it does not (another writer moved it on: theirs stays)."""
        try:
            self.db.delete_item(TableName=self.table, Key=key,
                                ConditionExpression="#f = :v",
                                ExpressionAttributeNames={"#f": field},
                                ExpressionAttributeValues=ddb_item(**{":v": value}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- reading what exists -----------------------------------------------------
    def locations_page(self, user_id: str, after: str,
                       limit: int) -> tuple[list[tuple[str, str]], str | None]:
        """(chunk, pack) of the user's location items after `after`, and the
        next cursor (None: no more). For the one-time index backfill."""
        got = self.db.query(
            TableName=self.table, Limit=limit, ConsistentRead=True,
            ProjectionExpression="sk, #p", ExpressionAttributeNames={"#p": "pack"},
            **_after(f"L#{user_id}", after))
        rows = [(it["sk"], it["pack"]) for it in map(ddb_plain, got.get("Items", []))]
        more = "LastEvaluatedKey" in got and rows
        return rows, (rows[-1][0] if more else None)

    def files_page(self, user_id: str, after: str,
                   limit: int) -> tuple[list[str], str | None]:
        """File ids with a head, after `after` (every file with a revision
        has a head: a delete is a tombstone revision)."""
        got = self.db.query(
            TableName=self.table, Limit=limit, ConsistentRead=True, ProjectionExpression="sk",
            **_after(f"F#{user_id}", after))
        files = [ddb_plain(it)["sk"] for it in got.get("Items", [])]
        more = "LastEvaluatedKey" in got and files
        return files, (files[-1] if more else None)

    def revision_chunks(self, user_id: str, file_id: str) -> Iterator[str]:
        """Every chunk id any kept revision of the file names."""
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, ConsistentRead=True, ProjectionExpression="chunks",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues=ddb_item(**{":p": f"R#{user_id}#{file_id}"}))
        for page in pages:
            for raw in page.get("Items", []):
                data = _bytes(ddb_plain(raw).get("chunks"))
                yield from (data[i:i + 32].hex() for i in range(0, len(data), 32))

    def relocate(self, user_id: str, moved: Mapping[str, tuple[str, Location]]) -> int:
        """Point each chunk's location at its copy in a new pack, if it still
        points at the old one (`moved`: chunk -> (old pack, new location)).
        How many moved."""
        done = 0
        for c, (old, loc) in sorted(moved.items()):
            try:
                self.db.put_item(
                    TableName=self.table, Item=ddb_item(pk=f"L#{user_id}", sk=c,
                                                        pack=loc.pack_id, off=loc.offset,
                                                        len=loc.length),
                    ConditionExpression="#p = :old", ExpressionAttributeNames={"#p": "pack"},
                    ExpressionAttributeValues=ddb_item(**{":old": old}))
                done += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return done

