"""Races with real threads against the real lock (redis-server) and the real
store (moto over HTTP): invariants 1-3 when handlers collide, locks expire
and events come twice and out of order."""
from __future__ import annotations

import random
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.config import Runtime
from chalicelib.core.decide import ACCEPTED, CONFLICT, REJECTED, TERMINAL
from chalicelib.core.ids import bundle_key, new_id, staging_key
from tests.harness import Device, Harness, Pending
from tests.integration.conftest import RuntimeFactory
from tests.integration.support import Steps, body, deliver, object_keys, wait_for

pytestmark = pytest.mark.integration

RACERS = 16


def twin(make_rt: RuntimeFactory, rt: Runtime, **overrides: str) -> Runtime:
    """A second handler's container: same table, bucket and Redis."""
    return make_rt(SEALSYNC_REDIS_URL=rt.settings.redis_url, **overrides)


def commit_revisions(h: Harness, dev: Device, file_id: str, count: int) -> None:
    for base in range(count):
        up = h.stage(dev, file_id, base)
        assert deliver(h.rt, up.key)[0].single.status == ACCEPTED


# -- N uploads from the same base -----------------------------------------------
@pytest.mark.parametrize("lock_ttl_ms", ["10000", "1"], ids=["lock", "lock-never-holds"])
@pytest.mark.parametrize("base", [0, 2], ids=["new-file", "existing-file"])
def test_sixteen_uploads_from_one_base_exactly_one_wins(
        h: Harness, make_rt: RuntimeFactory, base: int, lock_ttl_ms: str) -> None:
    dev, f = h.signup(), new_id()
    commit_revisions(h, dev, f, base)
    cursor = h.changes(dev)["cursor"]
    chunk = secrets.token_bytes(100)
    manifests = [secrets.token_bytes(64) for _ in range(RACERS)]
    ups = [h.stage(dev, f, base, m, (chunk,)) for m in manifests]
    # with a 1 ms lock, handlers overlap freely: only the fence decides
    racer_rt = twin(make_rt, h.rt, SEALSYNC_LOCK_TTL_MS=lock_ttl_ms)
    start = threading.Barrier(RACERS)

    def handler(i: int) -> str:
        start.wait()
        return deliver(racer_rt, ups[i].key)[0].single.status

    with ThreadPoolExecutor(RACERS) as pool:
        statuses = list(pool.map(handler, range(RACERS)))

    assert sorted(statuses) == [ACCEPTED] + [CONFLICT] * (RACERS - 1)
    won = statuses.index(ACCEPTED)
    for i, up in enumerate(ups):
        st = h.status(dev, up.upload_id)
        if i == won:
            assert (st["status"], st["revision"]) == (ACCEPTED, base + 1)
        else:
            assert (st["status"], st["winner_revision"]) == (CONFLICT, base + 1)
        # the loser's bytes stay retrievable for its conflict copy (invariant 5)
        assert body(h.rt, bundle_key(dev.user_id, up.upload_id)) == manifests[i]
    head = h.rt.meta.get_head(dev.user_id, f)
    assert head and (head.revision, head.upload_id) == (base + 1, ups[won].upload_id)
    assert body(h.rt, head.manifest_key or "") == manifests[won]
    feed = h.changes(dev, cursor)["changes"]
    assert [(c["seq"], c["file_id"], c["revision"]) for c in feed] == [
        (cursor + 1, f, base + 1)]
    assert object_keys(h.rt, staging_key(dev.user_id, "")) == []


# -- one user's commits on different files share the feed counter -------------------
@pytest.mark.parametrize("feed_lock", ["free", "stuck"])
def test_one_users_files_take_turns_on_the_feed(h: Harness, make_rt: RuntimeFactory,
                                               feed_lock: str) -> None:
    """RACERS handlers commit RACERS different files of one user at once.
    The feed lock makes them take turns on the feed counter: one fenced
    transaction each, none lost. With the lock held by someone else for good
    (stuck) they go ahead without it and the fence alone orders them: more
    transactions, the same feed."""
    dev = h.signup()
    cursor = h.changes(dev)["cursor"]
    files = [new_id() for _ in range(RACERS)]
    ups = [h.stage(dev, f, 0) for f in files]
    racer_rt = twin(make_rt, h.rt, SEALSYNC_LOCK_WAIT_S="0.2" if feed_lock == "stuck" else "5")
    if feed_lock == "stuck":
        racer_rt.redis.set(racer_rt.locks.feed_key(dev.user_id), "someone", px=60_000)
    transactions: list[str] = []
    real_commit = racer_rt.batches.commit_group

    def counted(rec: Any, *args: Any, **kwargs: Any) -> None:
        transactions.append(rec.entries[0].file_id)
        real_commit(rec, *args, **kwargs)

    racer_rt.batches.commit_group = counted  # type: ignore[method-assign]
    start = threading.Barrier(RACERS)

    def handler(i: int) -> str:
        start.wait()
        return deliver(racer_rt, ups[i].key)[0].single.status

    with ThreadPoolExecutor(RACERS) as pool:
        assert list(pool.map(handler, range(RACERS))) == [ACCEPTED] * RACERS
    if feed_lock == "free":
        assert sorted(transactions) == sorted(files)  # nobody lost the fence
    else:
        assert len(transactions) > RACERS  # the fence turned some away
    feed = h.changes(dev, cursor)["changes"]
    assert [c["seq"] for c in feed] == list(range(cursor + 1, cursor + RACERS + 1))
    assert sorted(c["file_id"] for c in feed) == sorted(files)


@pytest.mark.parametrize("hint", ["right", "behind", "ahead", "garbage"])
def test_the_feed_hint_saves_a_read_and_a_wrong_one_only_loses_the_fence(
        h: Harness, hint: str) -> None:
    """The feed head Redis remembers replaces the counter read. A wrong hint
    costs one lost fence and a read, never a wrong feed."""
    dev = h.signup()
    commit_revisions(h, dev, new_id(), 1)
    head = h.rt.meta.feed_head(dev.user_id)
    assert h.rt.locks.remembered_seq(dev.user_id) == head
    wrong = {"right": str(head), "behind": str(head - 1), "ahead": str(head + 3),
             "garbage": "x"}[hint]
    h.rt.redis.set(f"feedseq:{dev.user_id}", wrong)
    reads: list[str] = []
    transactions: list[str] = []
    real_read, real_commit = h.rt.meta.feed_head, h.rt.batches.commit_group

    def read(user: str) -> int:
        reads.append(user)
        return real_read(user)

    def commit(rec: Any, *args: Any, **kwargs: Any) -> None:
        transactions.append(rec.batch_id)
        real_commit(rec, *args, **kwargs)

    h.rt.meta.feed_head = read  # type: ignore[method-assign]
    h.rt.batches.commit_group = commit  # type: ignore[method-assign]
    f = new_id()
    assert deliver(h.rt, h.stage(dev, f, 0).key)[0].single.status == ACCEPTED
    assert (len(reads), len(transactions)) == {"right": (0, 1), "behind": (1, 2),
                                               "ahead": (1, 2), "garbage": (1, 1)}[hint]
    assert [(c["seq"], c["file_id"]) for c in h.changes(dev, head)["changes"]] == [
        (head + 1, f)]
    assert h.rt.locks.remembered_seq(dev.user_id) == head + 1


# -- a lock that expires mid-commit -------------------------------------------------
def test_lock_expiring_mid_commit_still_one_winner(h: Harness, rt: Runtime,
                                                   make_rt: RuntimeFactory) -> None:
    """A decides to accept, stalls past its 200 ms lock; B takes the expired
    lock, commits and still holds its lock while A wakes up. A's stale accept
    is refused by the fence, A ends as conflict, and A's release leaves B's
    lock alone (compare-and-delete)."""
    dev, f = h.signup(), new_id()
    commit_revisions(h, dev, f, 1)
    cursor = h.changes(dev)["cursor"]
    a_up, b_up = h.stage(dev, f, 1), h.stage(dev, f, 1)
    rt_a = twin(make_rt, rt, SEALSYNC_LOCK_TTL_MS="200")
    rt_b = twin(make_rt, rt, SEALSYNC_LOCK_TTL_MS="30000")
    lock = rt.locks.key(dev.user_id, f)
    a_decided, b_committed, a_done = threading.Event(), threading.Event(), threading.Event()
    b_token: list[object] = []
    a_released: list[bool] = []

    def a_stalls() -> None:
        a_decided.set()
        wait_for(b_committed, "B to commit")

    def b_locked() -> None:
        assert not b_committed.is_set() and not a_done.is_set()  # A is mid-commit
        b_token.append(rt.redis.get(lock))

    def b_holds_on() -> None:
        b_committed.set()
        wait_for(a_done, "A to finish")

    real_release = rt_a.locks.release_all  # (the feed lock A takes is released apart)

    def a_release(keys: list[str], token: str) -> int:
        released = real_release(keys, token)
        a_released.append(released)
        return released

    rt_a.locks.release_all = a_release  # type: ignore[method-assign]
    a_steps = Steps({"decided": a_stalls})
    b_steps = Steps({"locked": b_locked, "cleaned": b_holds_on})
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(deliver, rt_a, a_up.key, a_steps)
        wait_for(a_decided, "A to decide")
        b = pool.submit(deliver, rt_b, b_up.key, b_steps)
        a_outcome, a_failures = a.result(timeout=60)
        still_locked = rt.redis.get(lock)
        a_done.set()
        b_outcome, _ = b.result(timeout=60)

    assert (a_outcome.single.status, b_outcome.single.status) == (CONFLICT, ACCEPTED)
    assert a_failures == []
    # A decided once on the stale head, copied, lost the fence, decided again
    assert a_steps.seen == ["locked", "checked", "decided", "copied", "decided", "cleaned"]
    assert a_released == [0]  # A's lock had expired: B's is left alone
    assert b_token and b_token[0] is not None and still_locked == b_token[0]
    assert rt.redis.exists(lock) == 0  # B released its own lock at the end
    assert h.status(dev, a_up.upload_id)["winner_revision"] == 2
    assert h.status(dev, b_up.upload_id)["revision"] == 2
    head = rt.meta.get_head(dev.user_id, f)
    assert head and (head.revision, head.upload_id) == (2, b_up.upload_id)
    assert [(c["file_id"], c["revision"]) for c in h.changes(dev, cursor)["changes"]] == [
        (f, 2)]


# -- every event twice, in any order ----------------------------------------------
@dataclass
class Model:
    """What ordered, single delivery must produce: the reference."""

    heads: dict[str, tuple[int, bool]] = field(default_factory=dict)
    history: dict[str, list[str]] = field(default_factory=dict)  # upload per revision
    feed: list[tuple[str, int, bool]] = field(default_factory=list)
    results: dict[str, tuple[str, int | None, int | None]] = field(default_factory=dict)

    def accept(self, f: str, upload_id: str, deleted: bool) -> None:
        rev = self.heads.get(f, (0, False))[0] + 1
        self.heads[f] = (rev, deleted)
        self.history.setdefault(f, []).append(upload_id)
        self.feed.append((f, rev, deleted))
        self.results[upload_id] = (ACCEPTED, rev, None)


def plan_round(h: Harness, dev: Device, files: list[str], model: Model,
               rng: random.Random) -> dict[str, str]:
    """Stage one action per file; return {staging key: file}."""
    keys: dict[str, str] = {}
    for f in files:
        rev, deleted = model.heads.get(f, (0, False))
        action = rng.choices(["write", "delete", "stale", "ahead", "badsize", "missing", "idle"],
                             weights=[5, 2 if rev else 0, 2 if rev else 0, 1, 1, 1, 1])[0]
        if action == "idle":
            continue
        if action == "delete":
            r = h.delete_file(dev, f, rev)
            assert r.status_code == 202, r.body
            up = Pending(r.json_body["upload_id"],
                         staging_key(dev.user_id, r.json_body["upload_id"]), f, rev)
            if deleted:
                model.results[up.upload_id] = (REJECTED, None, None)
            else:
                model.accept(f, up.upload_id, deleted=True)
        elif action == "stale":
            up = h.stage(dev, f, rng.randrange(rev))
            model.results[up.upload_id] = (CONFLICT, None, rev)
        elif action == "ahead":
            up = h.stage(dev, f, rev + 1)
            model.results[up.upload_id] = (REJECTED, None, None)
        elif action == "missing":  # a chunk that never arrives
            up = h.stage(dev, f, rev, chunks=(secrets.token_bytes(32),), upload_chunks=False)
            model.results[up.upload_id] = (REJECTED, None, None)
        else:
            up = h.stage(dev, f, rev, chunks=(secrets.token_bytes(32),))
            if action == "badsize":  # the manifest is not the size declared
                h.rt.s3.put_object(Bucket=h.rt.settings.bucket, Key=up.key, Body=b"x")
                model.results[up.upload_id] = (REJECTED, None, None)
            else:
                model.accept(f, up.upload_id, deleted=False)
        keys[up.key] = f
    return keys


@pytest.mark.parametrize("seed", [7, 2024])
def test_duplicated_reordered_events_match_single_ordered_delivery(
        h: Harness, rt: Runtime, seed: int) -> None:
    rng = random.Random(seed)
    dev, files = h.signup(), [new_id() for _ in range(5)]
    model, delivered = Model(), dict[str, str]()
    seen = dict.fromkeys(files, 0)  # highest head revision any finished read saw
    guard = threading.Lock()
    outcomes: list[tuple[str, str]] = []

    def handler(key: str) -> None:
        outcome, _ = deliver(rt, key)
        f = delivered[key]
        with guard:
            floor = seen[f]
        head = rt.meta.get_head(dev.user_id, f)
        revision = head.revision if head else 0
        with guard:
            assert revision >= floor, f"head of {f} went back from {floor} to {revision}"
            seen[f] = max(seen[f], revision)
            outcomes.append((outcome.batch_id or "", outcome.single.status))

    for _ in range(6):
        keys = plan_round(h, dev, files, model, rng)
        late = rng.sample(sorted(delivered), min(len(delivered), 6))
        delivered.update(keys)
        batch = [*keys, *keys, *late]
        rng.shuffle(batch)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(handler, batch))
        for f in files:  # after each round, the heads are the model's
            head = rt.meta.get_head(dev.user_id, f)
            assert ((head.revision, head.deleted) if head else (0, False)) == \
                model.heads.get(f, (0, False))

    # every delivery reported the upload's real, final state
    for upload_id, status in outcomes:
        assert status == model.results[upload_id][0], upload_id
    for upload_id, (status, revision, winner) in model.results.items():
        got = h.status(dev, upload_id)
        assert got["status"] in TERMINAL
        assert (got["status"], got.get("revision"), got.get("winner_revision")) == (
            status, revision, winner)
        if status == REJECTED:
            assert got["reason"]
    for f in files:
        history = model.history.get(f, [])
        revisions = rt.meta.list_revisions(dev.user_id, f, 100)
        assert [v.upload_id for v in reversed(revisions)] == history
        for v in revisions:
            if not v.deleted:
                assert v.manifest_key == bundle_key(dev.user_id, v.upload_id)
                assert body(rt, v.manifest_key)
    feed = h.changes(dev)["changes"]
    assert [c["seq"] for c in feed] == list(range(1, len(model.feed) + 1))
    assert sorted((c["file_id"], c["revision"], c["deleted"]) for c in feed) == \
        sorted(model.feed)
    for f in files:  # per file, the feed lists revisions in order
        revs = [c["revision"] for c in feed if c["file_id"] == f]
        assert revs == sorted(revs)
    assert object_keys(rt, staging_key(dev.user_id, "")) == []


@pytest.mark.parametrize("replayed_put", [False, True], ids=["duplicate", "replayed-put"])
def test_duplicate_that_read_the_record_early_sees_the_final_state(
        h: Harness, rt: Runtime, make_rt: RuntimeFactory, replayed_put: bool) -> None:
    """Two deliveries of one event: the second reads the upload record while
    it is still pending, then waits for the lock the first holds. Perhaps
    the client also replays its presigned PUT of the manifest meanwhile (same
    length, other bytes). The second handler must report the real result and
    must not overwrite the committed version's manifest."""
    dev, f = h.signup(), new_id()
    original = secrets.token_bytes(64)
    up = h.stage(dev, f, 0, original)
    rt2 = twin(make_rt, rt)
    second_read = threading.Event()
    real_get = rt2.batches.get  # the routing read

    def get(batch_id: str) -> object:
        rec = real_get(batch_id)
        second_read.set()
        return rec

    rt2.batches.get = get  # type: ignore[assignment, method-assign]

    def replay_put() -> None:
        rt.s3.put_object(Bucket=rt.settings.bucket, Key=up.key,
                         Body=secrets.token_bytes(len(original)))

    first_locked = threading.Event()

    def first_waits() -> None:
        first_locked.set()
        wait_for(second_read, "the second delivery's read")

    first = Steps({"locked": first_waits, **({"cleaned": replay_put} if replayed_put else {})})
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(deliver, rt, up.key, first)
        wait_for(first_locked, "the first delivery to lock")
        b = pool.submit(deliver, rt2, up.key)
        assert a.result(timeout=60)[0].single.status == ACCEPTED
        assert b.result(timeout=60)[0].single.status == ACCEPTED
    head = rt.meta.get_head(dev.user_id, f)
    assert head and head.upload_id == up.upload_id and head.manifest_key
    assert body(rt, head.manifest_key) == original
    assert object_keys(rt, up.key) == []
