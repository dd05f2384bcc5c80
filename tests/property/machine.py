"""The commit state machine: hypothesis chooses what devices do, which held
event the pump delivers next (and how often), where each handler crashes,
where its lock expires or Redis restarts under it, and when the sweeper runs.
After every step the whole table and bucket are read back and checked
against `Model`; at the end every event is drained, the sweeper runs, every
upload must have ended, every head must decrypt to what was uploaded, and
no marker may appear anywhere on the server side or in its logs. The usage
counters must equal what is stored after every step (metering.py).
"""
from __future__ import annotations

import time
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sealsync_client.manifest import ManifestPlace, open_manifest
from sealsync_client.pipeline import open_chunk

from chalicelib.adapters.redis_lock import LockBusy
from chalicelib.core.ids import new_id, staging_key
from local.moto import MotoServer
from local.services import RedisServer
from tests.property.metering import check_usage
from tests.property.model import Model
from tests.property.retention import check_reads, expire_superseded
from tests.property.world import (
    STALE_LOCK_MS,
    STEPS,
    InjectedCrash,
    Upload,
    World,
)
from tests.property.zk import assert_zero_knowledge

FILES = 3
KINDS = ("write", "write", "write", "rename", "missing", "badsize", "abandoned")
BATCH_KINDS = ("write", "write", "rename", "missing")
# "gc": the collector runs (past the grace period) at a step boundary of the
# handler: between its chunk check and its transaction, among others; "swap":
# the staged objects are replaced by other bytes of the same size; "retain":
# superseded revisions expire, then the collector runs (retention.py)
INTERFERENCES = ("expire", "expire_nest", "nest", "restart", "restart_nest", "gc", "swap",
                 "retain")


# Draws never depend on state that timing can change (a retried event, a
# lock that had or had not expired): hypothesis replays choice sequences and
# insists each one draws the same way. Indexes are drawn raw, then reduced.
RAW = st.integers(0, 2**16 - 1)


def pick(data: Any, n: int) -> int:
    raw: int = data.draw(RAW, label="index")
    return raw % n if n else 0


class Stats:
    """Counted honestly, step by step; reported at the end of the session."""

    steps = 0
    by_rule: dict[str, int] = {}
    runs = 0
    deliveries = 0
    crashes = 0
    interferences = 0
    swaps = 0  # staged objects replaced mid-commit (the "swap" interference)
    ranged = 0  # batches with an entry sent as ranges of its base's chunk list
    packs: dict[str, int] = {}  # batches by what became of their pack

    collected = 0  # chunk objects and packs the gc job deleted
    expired = 0  # revisions the retention job expired
    repacked = 0  # mostly-dead packs the gc job repacked
    idle = 0  # rule calls that found nothing to do (an empty queue): not steps

    @classmethod
    def step(cls, rule: str, acted: bool = True) -> bool:
        if not acted:
            cls.idle += 1
            return False
        cls.steps += 1
        cls.by_rule[rule] = cls.by_rule.get(rule, 0) + 1
        return True


class CommitMachine(RuleBasedStateMachine):
    moto: MotoServer
    redis: RedisServer

    def __init__(self) -> None:
        super().__init__()
        self.world = World(self.moto, self.redis)
        self.model = Model(self.world.user_id, packs=self.world.packs)
        self.files = [new_id() for _ in range(FILES)]
        self.view: dict[tuple[int, str], tuple[int, str | None]] = {}
        self.queue: list[str] = []  # held S3 events: staging keys
        self.unstaged: list[Upload] = []
        self.crashed = False
        self.expiries = 0  # retention_expires steps taken
        Stats.runs += 1

    # -- devices ---------------------------------------------------------------
    def _base(self, data: Any, device: int, file_id: str) -> tuple[int, str | None]:
        rev, up = self.view.get((device, file_id), (0, None))
        lag = data.draw(st.sampled_from((0, 0, 0, 0, 1, -1)), label="lag")
        return max(0, rev - lag), up if lag == 0 else None

    # Hypothesis orders rules by argument count, then name, and its simplest
    # runs repeat the first feasible one: device_uploads and deliver_one come
    # first, so even those runs upload and commit.
    @rule(data=st.data())
    def device_uploads(self, data: Any) -> None:
        Stats.step("device_uploads")
        device = data.draw(st.integers(0, 1), label="device")
        file_id = self.files[data.draw(st.integers(0, FILES - 1), label="file")]
        kind = data.draw(st.sampled_from(KINDS), label="kind")
        w = self.world
        base, seen = self._base(data, device, file_id)
        source = self.model.uploads.get(seen or "")
        if kind == "rename" and (source is None or not source.chunks):
            kind = "write"
        count = data.draw(st.integers(1, 2), label="chunks")
        chunks = source.chunks if kind == "rename" and source else w.new_chunks(count)
        up, urls = w.create_upload(device, file_id, base, kind, w.next_path(), chunks)
        self.model.add(up)
        if kind == "abandoned":
            self.unstaged.append(up)
            return
        # a "missing" upload never PUTs its last chunk
        w.put_chunks(tuple(c for c in chunks if c.id in urls)[: -1 if kind == "missing" else None])
        body = up.manifest + b"\0" if kind == "badsize" else None
        self.queue.append(w.put_manifest(up, body))

    @rule(data=st.data())
    def device_uploads_batch(self, data: Any) -> None:
        """Several files in one batch (one bundle, one event), each entry
        with its own base; now and then a bundle whose size is a lie. The
        new chunks go one by one or in a pack, which now and then never
        arrives or is not the size declared: its entries must be rejected."""
        Stats.step("device_uploads_batch")
        device = data.draw(st.integers(0, 1), label="device")
        order = data.draw(st.permutations(range(FILES)), label="files")
        count = data.draw(st.integers(1, FILES), label="entries")
        badsize = data.draw(st.sampled_from((False, False, False, True)), label="badsize")
        pack = data.draw(st.sampled_from(("none", "ok", "ok", "never", "lie")), label="pack")
        w = self.world
        entries = []
        for n in order[:count]:
            file_id = self.files[n]
            kind = data.draw(st.sampled_from(BATCH_KINDS), label="kind")
            base, seen = self._base(data, device, file_id)
            source = self.model.uploads.get(seen or "")
            if kind == "rename" and (source is None or not source.chunks):
                kind = "write"
            chunks = source.chunks if kind == "rename" and source else w.new_chunks(1)
            entries.append((file_id, base, "badbundle" if badsize else kind, w.next_path(),
                            chunks))
        decls = []
        if pack != "none":  # the new chunks (a "missing" entry's last one never goes)
            fresh = [c for _, _, kind, _, chunks in entries if kind != "rename"
                     for c in (chunks[:-1] if kind == "missing" else chunks)]
            decls = [w.make_pack(fresh)] if fresh else []
            if decls and pack in ("never", "lie"):
                lost = {b["chunk"] for b in decls[0]["blobs"]}
                entries = [(f, base, "packlost" if kind in ("write", "rename") and
                            any(c.id in lost for c in chunks) else kind, path, chunks)
                           for f, base, kind, path, chunks in entries]
        Stats.packs[pack if decls else "none"] = Stats.packs.get(pack if decls else "none", 0) + 1
        ups, urls = w.create_batch(device, entries, decls)
        for up in ups:
            self.model.add(up)
            sent = tuple(c for c in up.chunks if c.id in urls)
            w.put_chunks(sent[:-1] if up.kind == "missing" else sent)
        for decl in decls:
            if pack != "never":
                w.put_pack(decl["pack_id"], lie=pack == "lie")
        body = ups[0].bundle + b"\0" if badsize else None
        self.queue.append(w.put_bundle(ups, body))

    def _edit_base(self, file_id: str, lag: int) -> Upload | None:
        """The committed upload an edit of `file_id` starts from: the head's,
        or (lag) an older revision's, if it has chunks to keep. From the
        model only (a precondition must not read the store); a base the
        retention step expired is sent as a full list (device_edits_batch)."""
        head = self.model.heads.get(file_id, 0)
        for rev in (head - lag, head):
            prior = self.model.uploads.get(self.model.chain.get((file_id, rev), ""))
            if prior is not None and prior.chunks:
                return prior
        return None

    @precondition(lambda self: any(self._edit_base(f, 0) for f in self.files))
    @rule(data=st.data())
    def device_edits_batch(self, data: Any) -> None:
        """An edit sent as the client sends one (core/chunk_ranges.py): the
        base's chunks with a new one between them, as ranges of the base's
        list plus the new chunk; now and then from an older revision (a
        conflict), with the new chunk in a pack, or next to a new version of
        another file sent in full."""
        Stats.step("device_edits_batch")
        device = data.draw(st.integers(0, 1), label="device")
        n, at = pick(data, FILES), pick(data, 2**16)
        lag = data.draw(st.sampled_from((0, 0, 0, 1)), label="lag")
        pack = data.draw(st.booleans(), label="pack")
        other = data.draw(st.booleans(), label="other")
        w = self.world
        editable = [f for f in self.files if self._edit_base(f, 0)]
        file_id = editable[n % len(editable)]
        prior = self._edit_base(file_id, lag)
        assert prior is not None and prior.upload_id in self.model.final
        base = int(self.model.final[prior.upload_id][1])
        k = at % (len(prior.chunks) + 1)
        new = w.new_chunks(1)
        entries = [(file_id, base, "write", w.next_path(),
                    prior.chunks[:k] + new + prior.chunks[k:])]
        if other:  # another file, its chunks listed in full as before
            f = next(f for f in self.files if f != file_id)
            other_base, _ = self._base(data, device, f)
            entries.append((f, other_base, "write", w.next_path(), w.new_chunks(1)))
        fresh = [c for _, _, _, _, chunks in entries for c in chunks
                 if c.id not in {p.id for p in prior.chunks}]
        decls = [w.make_pack(fresh)] if pack else []
        # an expired base names no chunks: the server answers 400 and the
        # client sends the full list instead (retention.py; chunk_delta.py)
        stored = w.rt.meta.get_revision(w.user_id, file_id, base)
        ranged = stored is not None and stored.expired_at is None
        ups, urls = w.create_batch(device, entries, decls,
                                   bases={file_id: [c.id for c in prior.chunks]} if ranged
                                   else None)
        Stats.ranged += ranged
        for up in ups:
            self.model.add(up)
            if not pack:
                w.put_chunks(tuple(c for c in up.chunks if c.id in urls))
        if ranged:  # the base's chunks: never presigned
            assert not set(urls) & {c.id for c in prior.chunks}
        for decl in decls:
            w.put_pack(decl["pack_id"])
        self.queue.append(w.put_bundle(ups))

    @rule(data=st.data(), batch=st.booleans(), revoked=st.booleans())
    def untrusted_writer_uploads(self, data: Any, batch: bool, revoked: bool) -> None:
        """A leaked token without the device key, or a device revoked after
        it presigned: whatever it sends ends rejected, and no head moves."""
        w = self.world
        if not Stats.step("untrusted_writer_uploads", not revoked or len(w.devices) < 12):
            return
        device = w.enrol() if revoked else data.draw(st.integers(0, 1), label="device")
        signer = None if revoked else w.thief(device)
        kind = "revoked" if revoked else "forged"
        file_id = self.files[data.draw(st.integers(0, FILES - 1), label="file")]
        base, _ = self._base(data, device % 2, file_id)
        chunks = w.new_chunks(1)
        if batch:
            ups, _ = w.create_batch(device, [(file_id, base, kind, w.next_path(), chunks)],
                                    signer=signer)
        else:
            up, _ = w.create_upload(device, file_id, base, kind, w.next_path(), chunks, signer)
            ups = [up]
        for up in ups:
            self.model.add(up)
        w.put_chunks(chunks)
        if revoked:
            w.revoke(device)
        self.queue.append(w.put_bundle(ups) if batch else w.put_manifest(ups[0]))

    @rule(data=st.data(), device=st.integers(0, 1), file=st.integers(0, FILES - 1))
    def device_deletes(self, data: Any, device: int, file: int) -> None:
        Stats.step("device_deletes")
        base, _ = self._base(data, device, self.files[file])
        if base == 0:  # nothing to delete: the API refuses with a 400
            self.world.refuse_delete(device, self.files[file])
            return
        up = self.world.delete_file(device, self.files[file], base)
        self.model.add(up)
        self.queue.append(staging_key(self.world.user_id, up.server_id))

    @rule(device=st.integers(0, 1), file=st.integers(0, FILES - 1))
    def device_pulls(self, device: int, file: int) -> None:
        Stats.step("device_pulls")
        self.view[(device, self.files[file])] = self.world.head_revision(device, self.files[file])

    @precondition(lambda self: self.unstaged)
    @rule(data=st.data())
    def late_manifest(self, data: Any) -> None:
        """The manifest PUT of an upload created long ago (maybe swept)."""
        Stats.step("late_manifest")
        up = self.unstaged.pop(pick(data, len(self.unstaged)))
        up.kind = "late"
        self.world.put_chunks(up.chunks)
        self.queue.append(self.world.put_manifest(up))

    @precondition(lambda self: any(u.staged for u in self.model.uploads.values()))
    @rule(data=st.data(), garbage=st.booleans())
    def replay_put(self, data: Any, garbage: bool) -> None:
        """A client (or attacker) PUTs the staging object of a finished upload
        again, with the same or other bytes: the result must not change."""
        done = [u for u in self.model.uploads.values()
                if u.upload_id in self.model.final and u.kind != "delete" and not u.bundle]
        i = pick(data, len(done))
        if not Stats.step("replay_put", bool(done)):
            return
        up = done[i]
        body = bytes(len(up.manifest)) if garbage else up.manifest
        self.queue.append(self.world.put_manifest(up, body))

    # -- the event pump ----------------------------------------------------------
    @rule(data=st.data())
    def duplicate_event(self, data: Any) -> None:
        i = pick(data, len(self.queue))
        if Stats.step("duplicate_event", bool(self.queue)):
            self.queue.append(self.queue[i])

    @precondition(lambda self: self.model.uploads)
    @rule(data=st.data())
    def replay_old_event(self, data: Any) -> None:
        Stats.step("replay_old_event")
        ups = sorted(self.model.uploads.values(), key=lambda u: u.upload_id)
        up = ups[pick(data, len(ups))]
        self.queue.append(staging_key(self.world.user_id, up.server_id))

    @rule(data=st.data(), keep=st.booleans(),
          crash_at=st.none() | st.sampled_from(STEPS), hard=st.booleans(),
          interfere=st.none() | st.tuples(st.sampled_from(STEPS),
                                          st.sampled_from(INTERFERENCES)))
    def deliver(self, data: Any, keep: bool, crash_at: str | None, hard: bool,
                interfere: tuple[str, str] | None) -> None:
        """Deliver a batch of held events (any of them: reordering), maybe
        keeping them for later (duplicates), with a crash and/or interference
        injected at a step boundary of the handler."""
        size = data.draw(st.integers(1, 3), label="batch")
        picks = [data.draw(RAW, label="event") for _ in range(size)]
        nested = data.draw(RAW, label="nested event")
        keys: list[str] = []
        for raw in picks[:len(self.queue) if keep else None]:
            if self.queue:
                i = raw % len(self.queue)
                keys.append(self.queue[i] if keep else self.queue.pop(i))
        if not Stats.step("deliver", bool(keys)):
            return
        staged = {k.rsplit("/", 1)[1] for k in keys}
        files = {u.file_id for u in self.model.uploads.values() if u.server_id in staged}
        fired: set[str] = set()

        def fault(step: str) -> None:
            if step in fired:
                return
            fired.add(step)
            if interfere and interfere[0] == step:
                self._interfere(nested, sorted(files), interfere[1], staged)
            if crash_at == step:
                raise InjectedCrash(f"injected crash at {step}")

        self._deliver(keys, fault)
        if crash_at in fired and hard:
            for file_id in files:
                self.world.leave_stale_lock(file_id)

    @rule(data=st.data())
    def deliver_one(self, data: Any) -> None:
        """The common case, so the pump keeps up with the devices."""
        i = pick(data, len(self.queue))
        if Stats.step("deliver_one", bool(self.queue)):
            self._deliver([self.queue.pop(i)], lambda step: None)

    def _interfere(self, nested: int, files: list[str], what: str,
                   staged: set[str] | frozenset[str] = frozenset()) -> None:
        Stats.interferences += 1
        if what == "swap":  # someone with write access to staging swaps the bytes
            self._swap(staged)
        if what == "gc":
            self._collect(True)
        if what == "retain":
            self._expire()
            self._collect(True)
        if what.startswith("expire"):
            for file_id in files:
                self.world.expire_lock(file_id)
        if what.startswith("restart"):
            self.world.restart_redis()
        if what.endswith("nest") and self.queue:
            self._deliver([self.queue.pop(nested % len(self.queue))], lambda step: None)

    def _swap(self, staged: set[str]) -> None:
        """Replace the staged objects of these server ids with other bytes of
        the same size, mid-commit (the check-then-copy window and the others).
        Their uploads may still commit, but only with the bytes first PUT
        (invariant 5 compares the stored ETag); else they are rejected."""
        for up in self.model.uploads.values():
            if up.server_id not in staged or not up.staged or up.kind == "delete" \
                    or up.upload_id in self.model.final:
                continue
            # what was staged: a batch's bundle, or a v1 upload's manifest alone
            # (a batch of one whose `bundle` stays empty: world.py)
            original = up.bundle or up.manifest
            key = staging_key(self.world.user_id, up.server_id)
            self.world.rt.s3.put_object(Bucket=self.world.rt.settings.bucket, Key=key,
                                        Body=bytes(255 - b for b in original))
            if up.kind != "swapped":
                up.swapped_from, up.kind = up.kind, "swapped"
            Stats.swaps += 1

    def _deliver(self, keys: list[str], fault: Any) -> None:
        """One handler invocation (an SQS batch): if it fails, SQS delivers
        the whole batch again later."""
        Stats.deliveries += 1
        failure = self.world.deliver(keys, fault)
        if failure is not None:
            self.crashed = self.crashed or isinstance(failure, InjectedCrash)
            Stats.crashes += isinstance(failure, InjectedCrash)
            self.queue.extend(keys)

    # -- infrastructure ------------------------------------------------------------
    @rule(data=st.data(), deliver_meanwhile=st.booleans())
    def redis_restarts(self, data: Any, deliver_meanwhile: bool) -> None:
        """Redis restarts empty (every lock and wake-up gone). An event
        delivered while it is down fails retryably (or is a finished upload's
        duplicate) and writes nothing; it is redelivered later."""
        Stats.step("redis_restarts")
        i = pick(data, len(self.queue))
        with self.world.redis_down():
            if deliver_meanwhile and self.queue:
                key = self.queue.pop(i)
                if self.world.deliver([key], lambda step: None) is not None:
                    self.queue.append(key)

    @rule(past_cutoff=st.booleans())
    def sweeper(self, past_cutoff: bool) -> None:
        """The scheduled sweep, at the real time (nothing is old enough: it
        must disturb nothing) or with the clock past every cutoff."""
        Stats.step("sweeper")
        self.world.sweep(past_cutoff)

    @rule(past_grace=st.booleans())
    def garbage_collect(self, past_grace: bool) -> None:
        """The `gc` job between commits, at the real time (nothing is old
        enough: it must delete nothing) or past the grace period."""
        Stats.step("garbage_collect")
        self._collect(past_grace)

    # At most one expiry per two uploads made (hypothesis would otherwise
    # spend a run's steps on it). Counted from rules run, never from what
    # was committed: a precondition must not depend on timing.
    @precondition(lambda self: len(self.model.uploads) > 2 * self.expiries)
    @rule(then_collect=st.booleans())
    def retention_expires(self, then_collect: bool) -> None:
        """The `retention` job: every revision superseded before now expires
        (a window of 0 s), maybe followed by the collector past the grace
        period; then every revision reads as it should."""
        Stats.step("retention_expires")
        self.expiries += 1
        self._expire()
        if then_collect:
            self._collect(True)
        check_reads(self.world, self.files)

    def _expire(self) -> None:
        self.model.expired = True
        Stats.expired += expire_superseded(self.world, self.files)

    def _collect(self, past_grace: bool) -> None:
        self.model.collected = self.model.collected or past_grace
        try:
            report = self.world.collect(past_grace)
        finally:  # a repack's packs (even a failed run's): the model checks their ranges
            self.world.learn_server_packs()
        Stats.collected += report["chunks_deleted"] + report["packs_deleted"]
        Stats.repacked += report["packs_repacked"]
        if not past_grace:
            assert report["chunks_deleted"] == report["packs_deleted"] == 0, report

    @invariant()
    def invariants_hold(self) -> None:
        snap = self.world.snapshot()
        self.model.check(snap)
        check_usage(snap, self.world.user_id)  # metering: exact, whatever the events did

    # -- the end -------------------------------------------------------------------
    def drain(self) -> None:
        """Deliver everything still held, retrying, then sweep: afterwards
        every upload must have ended (invariant 4)."""
        for _ in range(50 * (len(self.queue) + 1)):
            if not self.queue:
                break
            key = self.queue.pop(0)
            if isinstance(self.world.deliver([key], lambda step: None), LockBusy):
                time.sleep(STALE_LOCK_MS / 1000)
                self.queue.append(key)
        assert not self.queue, f"events still failing after many retries: {self.queue}"
        time.sleep(STALE_LOCK_MS / 1000)
        report = self.world.sweep()
        assert report.errors == 0, report

    def verify_contents(self) -> None:
        """Heads and conflict copies decrypt, with the client's keys, to the
        very names and chunks that were uploaded (invariant 5, end to end)."""
        w = self.world
        for up in self.model.uploads.values():
            status, rev, _, _, mkey = self.model.final[up.upload_id]
            if up.tombstone or status == "rejected":
                continue
            kept = w.rt.meta.get_revision(w.user_id, up.file_id, int(rev)) \
                if status == "accepted" else None
            expired = kept is not None and kept.expired_at is not None  # retention
            loser_collected = (status == "conflict" and self.model.collected) or expired
            place = (ManifestPlace.for_download(w.user_id, up.file_id, int(rev))
                     if status == "accepted" else
                     ManifestPlace.for_upload(w.user_id, up.file_id, up.base))
            sealed = w.body(str(mkey))
            if up.batch is not None:  # its slice of the batch's bundle
                sealed = sealed[up.offset:up.offset + len(up.manifest)]
            manifest = open_manifest(w.ring, place, sealed)
            assert manifest.path == up.path
            for ref, c in zip(manifest.chunks, up.chunks, strict=True):
                assert (ref.id, ref.size) == (c.id, c.size)
                if loser_collected:  # no kept revision references it: may be gone
                    continue
                envelope = w.envelope(ref.id)
                assert open_chunk(w.ring, w.user_id, ref.id, ref.size, envelope)

    def teardown(self) -> None:
        try:
            self.drain()
            snap = self.world.snapshot()
            self.model.check(snap)
            check_usage(snap, self.world.user_id)
            self.model.all_ended(snap)
            self.verify_contents()
            feed = self.world.h.changes(self.world.devices[0])["changes"]
            assert len(feed) == sum(1 for s in self.model.final.values() if s[0] == "accepted")
            assert_zero_knowledge(self.world, expect_crash_logs=self.crashed)
        finally:
            self.world.close()
