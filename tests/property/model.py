"""What must be true of the server's state, checked against a simple model:
the uploads the test made (and what each should be allowed to become) plus
what earlier checks observed. Invariants 1-5 of docs/DESIGN (shared):

  1 no lost update: per file, the accepted uploads form one chain
    (revision r accepted from base r-1, at most one per base), the head is
    its end; a conflict names a winner that exists, above its base
  3 idempotent: a terminal result never changes, a head never goes back,
    a revision never changes hands
  4 every upload ends (checked after draining and sweeping: `all_ended`)
  5 nothing lost: every accepted or conflicting upload's manifest is stored
    byte for byte (compared by MD5 ETag; a batch entry's: its batch's whole
    bundle) and every chunk it names exists
  + the change feed: seqs 1..N with no gap, one entry per accepted upload,
    the counter at N
  + retention: an expired revision is never a head, names no chunks, keeps
    its manifest (5 holds for its manifest only); its chunks may be gone
  + garbage collection (once the collector ran past the grace period,
    `collected`): every accepted version's chunks still exist (5 above, held
    strictly); a conflict loser's chunks, which no kept revision references,
    may be gone (its manifest stays); an upload whose chunks were collected
    before it committed may be rejected as "never uploaded" (the client
    sends them again)
(Invariant 2, "the lock is not the safety", is what the faults exercise.)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.adapters.batches import GROUP_SK, unpack_group_results
from chalicelib.core.batch import unpack_changes
from tests.property.world import Snapshot, Upload, etag_of

TERMINAL = ("accepted", "conflict", "rejected")
# Why each kind may be rejected; valid kinds only when their base was ahead
# (or, for a delete, when there was nothing to delete).
ALLOWED_REJECTS = {
    "write": ("ahead of the head",),
    "rename": ("ahead of the head",),
    "delete": ("ahead of the head", "does not exist or is already deleted"),
    "missing": ("never uploaded",),
    "badsize": ("but the entries declare",),  # a v1 upload's bundle is its manifest
    "abandoned": ("expired before its manifest arrived",),
    # its manifest was PUT late: a normal write unless the sweeper came first
    "late": ("ahead of the head", "expired before its manifest arrived"),
    # an entry of a batch whose bundle is not the size its entries declare
    "badbundle": ("but the entries declare",),
    # an entry of a batch whose new chunks are in a pack that never arrived
    # or whose size is a lie
    "packlost": ("never uploaded",),
    # a leaked token's upload (signed with a key that is not the device's),
    # and one presigned by a device revoked before its bytes arrived
    "forged": ("bad signature",),
    "revoked": ("was revoked",),
}
VALID = ("write", "rename", "delete", "late")
GC_REJECT = ("never uploaded",)  # its chunks were collected before it committed


def may_commit(up: Upload) -> bool:
    """A swapped upload may still commit (with the bytes first PUT: the
    swap came after the copy), if what it was could."""
    return up.kind in VALID or (up.kind == "swapped" and up.swapped_from in VALID)


def allowed_rejects(up: Upload) -> tuple[str, ...]:
    if up.kind == "swapped":  # the swapped bytes fail their device signature
        return (*ALLOWED_REJECTS[up.swapped_from], "bad signature")
    return ALLOWED_REJECTS[up.kind]


@dataclass
class Model:
    user_id: str
    uploads: dict[str, Upload] = field(default_factory=dict)
    # observations that must never change (invariant 3)
    final: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    chain: dict[tuple[str, int], str] = field(default_factory=dict)  # (file, rev) -> upload
    heads: dict[str, int] = field(default_factory=dict)
    packs: dict[str, bytes] = field(default_factory=dict)  # the world's, by pack id
    collected: bool = False  # the gc job ran with the clock past the grace period
    expired: bool = False  # the retention job ran: revisions superseded may have expired

    def add(self, up: Upload) -> None:
        self.uploads[up.upload_id] = up

    def records(self, snap: Snapshot) -> dict[str, dict[str, Any]]:
        """Each upload's record as the v1 record's fields: a batch entry's
        (a v1 upload is a batch of one) from its group's results item if
        accepted, else its result `r{i}` in the batch's state (pending
        without either)."""
        raw = {it["pk"][3:]: it for it in snap.items if it["sk"] == "UP"}
        accepted: dict[str, dict[int, Any]] = {}  # batch -> its groups' results
        for it in snap.items:
            if it["pk"].startswith("UP#") and it["sk"].startswith(GROUP_SK):
                got = unpack_group_results(bytes(getattr(it["res"], "value", it["res"])))
                accepted.setdefault(it["pk"][3:], {}).update(
                    {i: {"s": r.status, "rev": r.revision, "seq": r.seq}
                     for i, r in got.items()})
        out: dict[str, dict[str, Any]] = {}
        for uid, up in self.uploads.items():
            rec = raw.get(str(up.batch))  # every upload is a batch entry (v1: of one)
            if rec is None:
                continue
            others = {i: rec[f"r{i}"] for i in range(int(rec["n"])) if f"r{i}" in rec}
            mine = accepted.get(up.batch, {})
            assert not set(others) & set(mine), (  # never both: one terminal result
                f"batch {up.batch}: entries {set(others) & set(mine)} accepted and not")
            results = {**others, **mine}
            if rec["status"] == "finished":  # only once every entry has its result
                assert len(results) == int(rec["n"]), rec["pk"]
            r = results.get(up.index)
            if r is None:
                out[uid] = {"status": "pending"}
                continue
            stored = r["s"] in ("accepted", "conflict")
            out[uid] = {"status": r["s"], "revision": r.get("rev"), "winner": r.get("win"),
                        "reason": r.get("why"),
                        "mkey": f"manifests/{self.user_id}/batch/{up.batch}" if stored else None}
        return out

    def check(self, snap: Snapshot) -> None:
        records = self.records(snap)
        heads = {it["sk"]: it for it in snap.items if it["pk"] == f"F#{self.user_id}"}
        revisions = {(it["pk"].split("#")[2], int(it["sk"])): it for it in snap.items
                     if it["pk"].startswith(f"R#{self.user_id}#")}
        expired = {k for k, it in revisions.items() if "expired" in it}
        feed = sorted(self._feed(snap))
        counter = [int(it["seq"]) for it in snap.items
                   if it["pk"] == f"S#{self.user_id}" and it["sk"] == "SEQ"]

        accepted: dict[str, dict[int, Upload]] = {}
        for uid, up in self.uploads.items():
            rec = records.get(uid)
            assert rec is not None, f"upload {uid} has no record"
            status = rec["status"]
            assert status in ("pending", *TERMINAL), status
            if status == "pending":
                assert uid not in self.final, f"{uid} went back to pending"
                continue
            seen = (status, rec.get("revision"), rec.get("winner"), rec.get("reason"),
                    rec.get("mkey"))
            assert self.final.setdefault(uid, seen) == seen, (
                f"{uid} ({up.kind}) changed its result: {self.final[uid]} -> {seen}")
            if status == "accepted":
                assert may_commit(up), f"{up.kind} accepted: {rec}"
                rev = int(rec["revision"])
                assert rev == up.base + 1, f"accepted rev {rev} from base {up.base}"
                assert rev not in accepted.setdefault(up.file_id, {}), (
                    f"two uploads accepted from base {up.base} of {up.file_id}")
                accepted[up.file_id][rev] = up
                # an expired revision keeps its manifest, not its chunks
                self._stored(snap, up, rec.get("mkey"), gone=(up.file_id, rev) in expired)
            elif status == "conflict":
                assert may_commit(up), f"{up.kind} conflicted"
                assert int(rec["winner"]) > up.base, f"conflict below its base: {rec}"
                self._stored(snap, up, rec.get("mkey"), loser=True)
            else:
                reason = str(rec.get("reason", ""))
                # a chunk of an expired revision left the chunk index: an
                # upload that counted on it may have to send it again
                allowed = allowed_rejects(up) + (GC_REJECT if self.collected or self.expired
                                                 else ())
                assert any(r in reason for r in allowed), (
                    f"{up.kind} upload rejected for {reason!r}")

        for file_id in {up.file_id for up in self.uploads.values()}:
            chain = accepted.get(file_id, {})
            top = max(chain, default=0)
            assert sorted(chain) == list(range(1, top + 1)), f"gap in {sorted(chain)}"
            head = heads.get(file_id)
            assert (int(head["rev"]) if head else 0) == top, f"head {head} but chain {top}"
            assert self.heads.get(file_id, 0) <= top, "a head went back"
            self.heads[file_id] = top
            for rev, up in chain.items():
                assert self.chain.setdefault((file_id, rev), up.upload_id) == up.upload_id, (
                    f"revision {rev} of {file_id} changed hands")
                item = revisions.get((file_id, rev))
                assert item and item["upload"] == up.server_id, f"revision item {item}"
                if "expired" in item:  # retention: never the head, no chunk list left
                    assert rev < top and "chunks" not in item, f"expired {item}, head {top}"
                    continue
                # the full list as the entry meant it, ranges of a base expanded
                listed = bytes(getattr(item.get("chunks"), "value", item.get("chunks")) or b"")
                assert listed == b"".join(bytes.fromhex(c.id) for c in up.chunks), (
                    f"revision {rev} of {file_id} lists other chunks than its upload")
            if head:
                tip = chain[top]
                assert head["upload"] == tip.server_id
                if tip.batch is not None:  # its slice of the bundle
                    assert (int(head["moff"]), int(head["mlen"])) == (tip.offset,
                                                                      len(tip.manifest))
                assert bool(head.get("deleted")) == tip.tombstone
            for up in self.uploads.values():
                rec = records[up.upload_id]
                if up.file_id == file_id and rec["status"] == "conflict":
                    assert int(rec["winner"]) <= top, f"winner beyond the head: {rec}"

        seqs = [s for s, _ in feed]
        assert seqs == list(range(1, len(feed) + 1)), f"feed seqs {seqs}"
        assert counter == ([len(feed)] if feed else []), f"counter {counter}, feed {seqs}"
        got = sorted((it["file"], int(it["rev"]), bool(it.get("deleted"))) for _, it in feed)
        want = sorted((f, r, up.tombstone) for f, ch in accepted.items()
                      for r, up in ch.items())
        assert got == want, f"feed {got} != accepted {want}"
        by_file: dict[str, list[int]] = {}
        for _, it in feed:
            by_file.setdefault(it["file"], []).append(int(it["rev"]))
        for revs in by_file.values():
            assert revs == sorted(revs), f"feed out of revision order: {revs}"

    def _feed(self, snap: Snapshot) -> list[tuple[int, dict[str, Any]]]:
        """(seq, change) for every change in the feed: a single upload's item
        is one; a batch group's item holds seqs first..its key, in order."""
        out: list[tuple[int, dict[str, Any]]] = []
        for it in snap.items:
            if it["pk"] != f"S#{self.user_id}" or it["sk"] == "SEQ":
                continue
            if "changes" not in it:
                out.append((int(it["sk"]), it))
                continue
            first = int(it["first"])
            group = unpack_changes(bytes(getattr(it["changes"], "value", it["changes"])))
            assert first + len(group) - 1 == int(it["sk"]), f"feed item {it['sk']}: {first}+"
            out += [(first + k, {"file": f, "rev": rev, "deleted": deleted})
                    for k, (f, rev, deleted) in enumerate(group)]
        return out

    def _stored(self, snap: Snapshot, up: Upload, mkey: Any, loser: bool = False,
                gone: bool = False) -> None:
        """Invariant 5: the version's manifest bytes and its chunks exist
        (a conflict loser's chunks only until the collector ran; an expired
        revision's not at all: its manifest stays for the history)."""
        if up.tombstone:  # a v1 delete's batch of one: its bundle is empty
            assert mkey is None or snap.etags.get(str(mkey)) == etag_of(b""), (
                f"tombstone with a manifest {mkey}")
            return
        assert mkey, f"{up.upload_id} has no manifest key"
        assert snap.etags.get(str(mkey)) == etag_of(up.bundle or up.manifest), (
            f"manifest of {up.upload_id} missing or not the bytes uploaded")
        index = {it["sk"]: it for it in snap.items if it["pk"] == f"L#{self.user_id}"}
        for c in () if (loser and self.collected) or gone else up.chunks:
            loc = index.get(c.id, {})
            if "pack" not in loc:
                key = f"chunks/{self.user_id}/{c.id}"
                assert snap.etags.get(key) == etag_of(c.envelope), f"chunk {key} lost"
                continue
            # in a pack: the pack is stored, byte for byte, and the range
            # the index records holds exactly this chunk's envelope
            data, at = self.packs.get(loc["pack"], b""), int(loc["off"])
            key = f"packs/{self.user_id}/{loc['pack']}"
            assert data and snap.etags.get(key) == etag_of(data), f"pack {key} lost"
            assert data[at:at + int(loc["len"])] == c.envelope, f"chunk {c.id} misplaced"

    def all_ended(self, snap: Snapshot) -> None:
        """Invariant 4, after draining every event and sweeping."""
        records = self.records(snap)
        stuck = [(u, up.kind) for u, up in self.uploads.items()
                 if records[u]["status"] not in TERMINAL]
        assert not stuck, f"uploads still pending after drain + sweep: {stuck}"
        staging = [k for k in snap.etags if k.startswith("staging/")]
        assert not staging, f"staging objects left behind: {staging}"
